/**
 * What every `convert` command accepts, declared as data: its command string, usage,
 * positionals, options and examples. `convert --help` renders these (help.ts) without
 * loading the argument parser or any command's code, so that it starts about as fast as
 * Node itself; the parser (parse.ts) registers the same declarations with yargs.
 * This file imports nothing.
 */

/** An option of a command (or a global one). Every option is a string or a boolean flag. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  describe: string;
  /** A one-letter alias (`o` for `-o`). */
  alias?: string;
}

/** The declaration of one `convert` command. */
export interface CommandSpec {
  /** The yargs command string: `$0 <input>` (the default command), `passes [name]`, `diff <a> <b>`. */
  command: string;
  /** One line for `convert --help`. */
  describe: string;
  /** Usage lines; `$0` stands for the program name. */
  usage: string[];
  /** Positional arguments (all strings), by name, with their help. */
  positionals: Record<string, string>;
  options: Record<string, OptionSpec>;
  examples: [command: string, meaning: string][];
  /** A paragraph printed after the examples. */
  epilogue?: string;
  /** Reject options the command does not declare ("Unknown argument: …"). */
  strict: boolean;
}

/** Options every command understands. */
export const GLOBAL_OPTIONS: Record<string, OptionSpec> = {
  plugin: { type: 'string', describe: 'load passes from a plugin module (.mjs/.js/.ts); repeatable' },
  quiet: { type: 'boolean', alias: 'q', describe: 'print nothing but errors and requested output' },
  verbose: { type: 'boolean', alias: 'v', describe: 'say more about each pass' },
  debug: { type: 'boolean', describe: 'print stack traces of errors' },
  version: { type: 'boolean', describe: 'Show version number' },
  help: { type: 'boolean', alias: 'h', describe: 'Show help' },
};

/** `convert <input.onnx> -o <output.onnx> …` and `convert <folder> --variant <name> …` (convert-command.ts). */
export const CONVERT_SPEC: CommandSpec = {
  command: '$0 <input>',
  describe: 'Run passes on an ONNX model and save the result (no --pass: round trip)',
  usage: ['$0 <input.onnx> -o <output.onnx> [--pass NAME]... [--NAME.KEY VALUE]...', '$0 <model folder> --variant <name> [--force] [--pass NAME]... [--NAME.KEY VALUE]...'],
  positionals: { input: 'the ONNX model to read, or a transformers.js model folder (config.json, onnx/*.onnx)' },
  options: {
    output: { type: 'string', alias: 'o', describe: 'where to write the model (required; never the input)' },
    pass: { type: 'string', describe: 'a pass to run; repeat for more, they run in the order given (see `convert passes`)' },
    config: { type: 'string', describe: 'JSON file: { "passes": [{ "name": ..., "options": {...} }], "plugins": [...] }; CLI passes run after its passes; its paths are relative to its folder' },
    'external-data': { type: 'boolean', describe: 'write every initializer of 1 KiB or more to <output>.data (default: a file conversion when the input has a data file, any output that would pass 2 GiB; --no-external-data: one file)' },
    verify: { type: 'boolean', describe: 'verify the graph before the first pass and after each pass' },
    stats: { type: 'boolean', describe: "print each pass's statistics on stdout" },
    variant: { type: 'string', describe: 'folder input: the variant to write beside each fp32 graph in onnx/: a transformers.js dtype (q8 → <base>_quantized.onnx, q4, int8) or a name of your own (→ <base>_<name>.onnx)' },
    force: { type: 'boolean', describe: 'folder input: replace a variant that exists (fp32 graphs are never written)' },
  },
  examples: [
    ['$0 model.onnx -o out.onnx', 'round trip (normalise) a model'],
    ['$0 model.onnx -o out.onnx --pass constants-to-initializers --pass dce --stats', 'run two passes, print their statistics'],
    ['$0 model.onnx -o out.onnx --pass q-arvd --q-arvd.w-bits 4 --q-arvd.a-bits none', 'set options of a pass (W4 weight-only)'],
    ['$0 model.onnx -o out.onnx --plugin ./my-plugin.mjs --pass drop-doc-strings --drop-doc-strings.keep a,b', "run a plugin's pass with an option"],
    ['$0 ./model --pass q-arvd --variant q8 --q-arvd.prompts prompts.txt', "write onnx/model_quantized.onnx for transformers.js { dtype: 'q8' }"],
  ],
  epilogue:
    'Pass options are namespaced by pass: --<pass>.<key> <value> (lists comma-separated). ' +
    "Options on the command line override the config file's. Run `convert passes` for every pass, its options and statistics.",
  // Pass options (--<pass>.<key>) are not declared here; runConvert checks them against the registry.
  strict: false,
};

/** `convert passes [name]` (passes-command.ts). */
export const PASSES_SPEC: CommandSpec = {
  command: 'passes [name]',
  describe: 'List the registered passes with their options and statistics',
  usage: ['$0 passes [name] [--plugin ./p.mjs]... [--config convert.config.json]'],
  positionals: { name: 'show only this pass' },
  options: {
    config: { type: 'string', describe: "also the plugins a convert config file lists (its 'plugins', relative to its folder)" },
  },
  examples: [
    ['$0 passes', 'every built-in pass'],
    ['$0 passes --plugin ./my-plugin.mjs', 'include the passes of a plugin'],
    ['$0 passes --config convert.config.json', "include the passes of a config file's plugins"],
  ],
  strict: true,
};

/** `convert diff <before> <after>` (diff-command.ts). */
export const DIFF_SPEC: CommandSpec = {
  command: 'diff <before> <after>',
  describe: 'Show what changed between two models (op counts, inputs, initializers, rewritten layers)',
  usage: ['$0 diff <before.onnx> <after.onnx> [--format text|md|json] [--exit-code] [--data]'],
  positionals: { before: 'the original model', after: 'the changed model' },
  options: {
    format: { type: 'string', describe: 'text (default), md (GitHub tables for a PR comment) or json (schema qarvd.diff/1)' },
    'exit-code': { type: 'boolean', describe: 'exit with 1 when the models differ, 0 when not, 2 on an error (a missing or unreadable model), like diff(1)' },
    data: { type: 'boolean', describe: 'also compare tensor contents (sha256); reads every weight' },
  },
  examples: [
    ['$0 diff model.onnx model.q.onnx', 'review a quantized model'],
    ['$0 diff a.onnx b.onnx --format md > comment.md', 'a pull-request comment'],
  ],
  strict: true,
};

/** `convert inspect <model>` (inspect-command.ts). */
export const INSPECT_SPEC: CommandSpec = {
  command: 'inspect <model>',
  describe: 'Per linear layer: channel-norm statistics and the S2 outlier decision (the model is not changed)',
  usage: ['$0 inspect <model.onnx> [--format text|md|json] [--html report.html] [--tau 3.5] [--gamma 1.2] [--align 32] [--min-k 16]'],
  positionals: { model: 'the ONNX model to read' },
  options: {
    format: { type: 'string', describe: 'text (default), md or json (schema qarvd.inspect/1)' },
    html: { type: 'string', describe: 'also write a self-contained HTML report with the charts to this path' },
    report: { type: 'string', describe: 'a q-arvd --report JSON of this model: adds weight errors, activation scales and the S1 curve to the HTML' },
    tau: { type: 'string', describe: 'modified z-score threshold (default 3.5)' },
    gamma: { type: 'string', describe: 'an outlier norm must also exceed gamma × median (default 1.2)' },
    align: { type: 'string', describe: 'round outlier counts up to a multiple of this (default 32; 1 disables)' },
    'min-k': { type: 'string', describe: 'skip layers with fewer input channels (default 16)' },
    include: { type: 'string', describe: 'only layers whose node name matches one of these globs (comma-separated)' },
    exclude: { type: 'string', describe: 'skip layers whose node name matches one of these globs (comma-separated)' },
    scope: { type: 'string', describe: 'all (default); blocks: only the layers inside the repeated blocks, as the passes\' scope blocks; outer-w8: every layer, marking those q-arvd\'s default scope gives 8-bit weights' },
  },
  examples: [
    ['$0 inspect model.onnx', 'outlier statistics per layer and the type × depth table'],
    ['$0 inspect model.onnx --html report.html --report q-arvd.json', 'the charts, with the pass report'],
  ],
  strict: true,
};

/** Every command, the default one first (the order of `convert --help`; commands.ts pairs each with its code). */
export const COMMAND_SPECS: readonly CommandSpec[] = [CONVERT_SPEC, PASSES_SPEC, DIFF_SPEC, INSPECT_SPEC];
