/**
 * `convert <input.onnx> -o <output.onnx> [--pass NAME]... [--NAME.KEY VALUE]...`: load, run
 * passes in order, save atomically. With no pass it round-trips the model.
 * `convert <folder> --variant <name> [--force] [--pass NAME]...`: a transformers.js model
 * folder; every fp32 graph in onnx/ gets the variant beside it (see `src/hf/folder.ts`).
 */
import type { CliCommand } from './command.ts';

export const convertCommand: CliCommand = {
  command: '$0 <input>',
  describe: 'Run passes on an ONNX model and save the result (no --pass: round trip)',
  builder: (y) =>
    y
      .usage('Usage: $0 <input.onnx> -o <output.onnx> [--pass NAME]... [--NAME.KEY VALUE]...\n       $0 <model folder> --variant <name> [--force] [--pass NAME]... [--NAME.KEY VALUE]...')
      .positional('input', { type: 'string', describe: 'the ONNX model to read, or a transformers.js model folder (config.json, onnx/*.onnx)' })
      .option('output', { alias: 'o', type: 'string', describe: 'where to write the model (required; never the input)' })
      .option('pass', { type: 'string', describe: 'a pass to run; repeat for more, they run in the order given (see `convert passes`)' })
      .option('config', { type: 'string', describe: 'JSON file: { "passes": [{ "name": ..., "options": {...} }], "plugins": [...] }; CLI passes run after its passes' })
      .option('external-data', { type: 'boolean', describe: 'write every initializer of 1 KiB or more to <output>.data (default: only when over 2 GiB)' })
      .option('verify', { type: 'boolean', describe: 'verify the graph before the first pass and after each pass' })
      .option('stats', { type: 'boolean', describe: 'print each pass\'s statistics on stdout' })
      .option('variant', { type: 'string', describe: 'folder input: the variant to write beside each fp32 graph in onnx/: a transformers.js dtype (q8 → <base>_quantized.onnx, q4, int8, uint8) or a name of your own (→ <base>_<name>.onnx)' })
      .option('force', { type: 'boolean', describe: 'folder input: replace a variant that exists (fp32 graphs are never written)' })
      .example('$0 model.onnx -o out.onnx', 'round trip (normalise) a model')
      .example('$0 model.onnx -o out.onnx --pass constants-to-initializers --pass dce --stats', 'run two passes, print their statistics')
      .example('$0 model.onnx -o out.onnx --pass q-arvd --q-arvd.w-bits 4 --plugin ./q.mjs', 'set an option of a plugin\'s pass')
      .example('$0 ./model --pass q-arvd --variant q8 --q-arvd.prompts prompts.txt', 'write onnx/model_quantized.onnx for transformers.js { dtype: \'q8\' }')
      .epilogue(
        'Pass options are namespaced by pass: --<pass>.<key> <value> (lists comma-separated). ' +
          'Options on the command line override the config file\'s. Run `convert passes` for every pass, its options and statistics.',
      ),
  // The work (and the passes, model IO and hf code it needs) is imported only when a
  // conversion runs, so `convert --help` stays fast (convert-run.ts).
  run: async (args, io) => (await import('./convert-run.ts')).runConvert(args, io),
};
