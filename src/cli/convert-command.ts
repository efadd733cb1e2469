/**
 * `convert <input.onnx> -o <output.onnx> [--pass NAME]... [--NAME.KEY VALUE]...`: load, run
 * passes in order, save atomically. With no pass it round-trips the model.
 * `convert <folder> --variant <name> [--force] [--pass NAME]...`: a transformers.js model
 * folder; every fp32 graph in onnx/ gets the variant beside it (see `src/hf/folder.ts`).
 */
import { accessSync, constants, existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Model } from '../graph/ir/model.ts';
import { ModelFileError } from '../graph/serde/errors.ts';
import { cleanupOnSignal } from '../graph/serde/temp-files.ts';
import { loadModel, modelTensors, saveModel, type SaveResult } from '../graph/serde/io.ts';
import { InvalidInputError, type PassRecord, PassManager } from '../passes/manager.ts';
import type { PassRegistry } from '../passes/registry.ts';
import { listFlag, singleFlag } from './args.ts';
import type { CliCommand } from './command.ts';
import { CliError } from './errors.ts';
import { cliLogger, type GlobalFlags } from './io.ts';
import { buildSteps, type ConvertConfig, passOptionsFromArgs, readConfig } from './pipeline.ts';
import { createRegistry } from './plugins.ts';
import { FolderError } from '../hf/errors.ts';
import { convertFolder, isFolder, planVariant, quantMeaning, scanModelFolder } from '../hf/folder.ts';
import type { PassStep } from '../passes/manager.ts';
import type { Logger } from '../passes/log.ts';

/** Option names of this command and the global ones; any other key must be `--<pass>.<key>`. */
const OWN_KEYS = new Set(['_', '$0', 'input', 'output', 'pass', 'config', 'external-data', 'verify', 'stats', 'plugin', 'quiet', 'verbose', 'debug', 'help', 'version', 'variant', 'force']);

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
  run: runConvert,
};

async function runConvert(args: Record<string, unknown>, io: Parameters<CliCommand['run']>[1]): Promise<number> {
  const flags = args as GlobalFlags;
  const log = cliLogger(io, flags);
  const input = args.input as string;
  const output = singleFlag(args.output, '-o/--output');
  const extra = (args._ as unknown[]).filter((a) => a !== undefined);
  if (extra.length) throw new CliError(`unexpected argument${extra.length > 1 ? 's' : ''} ${extra.join(' ')}: convert takes one input model`);
  const folderMode = isFolder(input);
  const variant = singleFlag(args.variant, '--variant');
  if (folderMode && !variant && !existsSync(join(input, 'config.json'))) {
    throw new CliError(`${input}: is a folder, not an .onnx file, and not a transformers.js model folder (no config.json); give the .onnx file, or a folder with config.json and onnx/`);
  }
  if (folderMode && output) throw new CliError(`${input}: is a model folder; -o is not used with one: give --variant <name> and each variant is written beside its fp32 graph in onnx/`);
  if (folderMode && !variant) throw new CliError(`${input}: is a model folder; give --variant <name> (q8, q4, int8, uint8, or a name of your own) to write beside each fp32 graph in onnx/`);
  if (!folderMode && (variant !== undefined || args.force !== undefined)) throw new CliError(`${variant !== undefined ? '--variant' : '--force'} applies to a model folder input; ${input} is not a folder (for a file give -o <output.onnx>)`);
  if (!folderMode && !output) throw new CliError(`${input}: no output path; give -o <output.onnx>`);

  const configFile = singleFlag(args.config, '--config');
  const config: ConvertConfig | undefined = configFile ? readConfig(configFile) : undefined;
  const registry = await createRegistry([...(config?.plugins ?? []), ...listFlag(args.plugin, 'plugin')]);
  const steps = buildSteps(registry, config?.passes ?? [], listFlag(args.pass, 'pass', true), passOptionsFromArgs(args, OWN_KEYS, registry), configFile);

  if (folderMode) return cleanupOnSignal(io.err, () => runFolder(input, variant!, steps, args, io, log, registry));
  if (!existsSync(input)) throw new ModelFileError(input, 'no such file');
  checkOutputPath(input, output!);

  return cleanupOnSignal(io.err, () => convertFile(input, output!, steps, args, io, log, registry));
}

/** File mode: load, run the passes, save atomically. */
async function convertFile(input: string, output: string, steps: PassStep[], args: Record<string, unknown>, io: Parameters<CliCommand['run']>[1], log: Logger, registry: PassRegistry): Promise<number> {
  const flags = args as GlobalFlags;
  const t0 = performance.now();
  const model = loadModel(input);
  checkDataFiles(model, input, output!);
  const before = countNodes(model);
  const initsBefore = model.graph.initializers.size;

  const manager = new PassManager(steps, {
    verify: args.verify === true ? true : args.verify === false ? false : undefined,
    log,
    verbose: Boolean(flags.verbose || flags.debug),
    modelDir: dirname(resolve(input)),
  });
  const result = await manager.run(model).catch((e: unknown) => {
    // The structural checks found the input broken: name the file, not "the input model".
    throw e instanceof InvalidInputError ? new ModelFileError(input, e.message.replace(/^the input model /, ''), { cause: e }) : e;
  });

  const externalData = args['external-data'] === true ? true : args['external-data'] === false ? false : 'auto';
  const saved = saveModel(model, output!, { externalData });

  if (args.stats) io.out(formatStats(result.passes, registry));
  const names = result.passes.map((p) => p.name);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  log.info(
    `wrote ${output} (${formatBytes(saved.bytes)}): ${before} → ${countNodes(model)} nodes, ${initsBefore} → ${model.graph.initializers.size} initializers; ` +
      `passes: ${names.length ? names.join(', ') : 'none (round trip)'}; ${seconds} s`,
  );
  logExternal(saved, log);
  return 0;
}

/** Folder mode: every fp32 graph of `folder`'s onnx/ gets the variant beside it, written all at once. */
async function runFolder(folder: string, variant: string, steps: PassStep[], args: Record<string, unknown>, io: Parameters<CliCommand['run']>[1], log: Logger, registry: PassRegistry): Promise<number> {
  try {
    const plan = planVariant(scanModelFolder(folder), variant, quantMeaning(steps), args.force === true);
    const written = await convertFolder(plan, {
      externalData: args['external-data'] === true ? true : args['external-data'] === false ? false : 'auto',
      log,
      runPasses: async (model, target) => {
        const t0 = performance.now();
        const before = countNodes(model);
        const manager = new PassManager(steps, { verify: args.verify === true ? true : args.verify === false ? false : undefined, log, verbose: Boolean(args.verbose || args.debug), modelDir: dirname(resolve(target.input)) });
        const result = await manager.run(model);
        if (args.stats) io.out(`${target.input}:\n${formatStats(result.passes, registry)}`);
        log.info(`${target.input}: ${before} → ${countNodes(model)} nodes; passes: ${result.passes.map((p) => p.name).join(', ') || 'none (round trip)'}; ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      },
    });
    for (const w of written) {
      const total = w.saved.bytes + (w.saved.externalDataBytes ?? 0);
      log.info(`wrote ${w.output} (${formatBytes(total)}, ${(total / w.baseBytes).toFixed(2)}× ${w.base}'s ${formatBytes(w.baseBytes)})`);
      logExternal(w.saved, log);
    }
    const stem = basename(written[0]!.output, '.onnx');
    if (plan.variant.isDtype) log.info(`load with pipeline(task, '${folder}', { dtype: '${variant}' })`);
    else log.info(`'${variant}' is not a transformers.js dtype: load with pipeline(task, '${folder}', { model_file_name: '${stem}' }) (model_file_name names the graph file without onnx/ and .onnx)`);
    if (written.some((w) => w.saved.externalDataPath)) {
      log.info(`onnxruntime-node finds a variant's data file by the name recorded in it; in the browser transformers.js fetches it only when config.json's "transformers.js_config" has "use_external_data_format": { "${basename(written[0]!.output)}": 1 }`);
    }
    return 0;
  } catch (e) {
    if (e instanceof FolderError) throw new CliError(e.message, { cause: e });
    throw e;
  }
}

/** Refuses an output that is the input (same real path or same inode), a folder, or in a missing folder. */
function checkOutputPath(input: string, output: string): void {
  const outAbs = resolve(output);
  if (existsSync(outAbs)) {
    if (statSync(outAbs).isDirectory()) throw new CliError(`${output}: is a folder; -o needs a file path`);
    if (sameFile(input, output)) throw new CliError(`${output}: is the input file; write the output to another path (the input is never overwritten)`);
  } else {
    const dir = dirname(outAbs);
    if (!existsSync(dir)) throw new CliError(`${output}: folder ${dirname(output)} does not exist`);
    // Fail before the passes (calibration can take hours), not at the save.
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      throw new CliError(`${output}: folder ${dirname(output)} is not writable`);
    }
    if (resolve(realpathSync(dir), basename(outAbs)) === realpathSync(input)) {
      throw new CliError(`${output}: is the input file; write the output to another path (the input is never overwritten)`);
    }
  }
}

/** Refuses an output that would replace a data file the model reads, or whose data file would replace the input. */
function checkDataFiles(model: Model, input: string, output: string): void {
  const dataFiles = new Set<string>();
  for (const t of modelTensors(model)) if (t.external) dataFiles.add(t.external.path);
  for (const f of dataFiles) {
    if (sameFile(f, output)) throw new CliError(`${output}: is the external data file of ${input}; write the output to another path`);
  }
  const outData = `${resolve(output)}.data`;
  if (existsSync(outData) && sameFile(outData, input)) {
    throw new CliError(`${output}: its data file ${basename(outData)} would replace the input ${input}; choose another output name`);
  }
}

function sameFile(a: string, b: string): boolean {
  if (!existsSync(a) || !existsSync(b)) return false;
  if (realpathSync(a) === realpathSync(b)) return true;
  const sa = statSync(a);
  const sb = statSync(b);
  return sa.dev === sb.dev && sa.ino === sb.ino;
}

function countNodes(model: Model): number {
  let n = 0;
  for (const _ of model.graph.allNodes()) n++;
  return n;
}

function logExternal(saved: SaveResult, log: ReturnType<typeof cliLogger>): void {
  if (saved.externalReason) log.info(`external data: ${saved.externalReason}`);
  if (saved.externalDataPath) log.info(`weights written to ${saved.externalDataPath} (${formatBytes(saved.externalDataBytes ?? 0)})`);
}

/** Per-pass statistics, aligned, for `--stats`. */
export function formatStats(records: readonly PassRecord[], registry: PassRegistry): string {
  if (records.length === 0) return 'no passes ran\n';
  const lines: string[] = [];
  for (const r of records) {
    lines.push(`${r.name} (plugin ${r.plugin}): ${r.modified ? 'modified' : 'no change'}, ${r.ms.toFixed(0)} ms`);
    const help = registry.has(r.name) ? registry.get(r.name).pass.statistics : {};
    const keys = Object.keys(r.stats);
    const w = Math.max(0, ...keys.map((k) => k.length));
    const vw = Math.max(0, ...keys.map((k) => String(r.stats[k]).length));
    for (const k of keys) lines.push(`  ${k.padEnd(w)}  ${String(r.stats[k]).padStart(vw)}  ${help[k] ?? ''}`.trimEnd());
  }
  return lines.join('\n') + '\n';
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
