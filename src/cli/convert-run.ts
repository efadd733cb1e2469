/**
 * What `convert <input> …` does once its arguments are parsed: file mode through the
 * library's {@link convertFile} (the same function `quantize()` uses), folder mode through
 * `src/hf/folder.ts`. Imported by `convert-command.ts` only when a conversion runs.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { convertFile } from '../api/convert.ts';
import { createRegistry } from '../api/registry.ts';
import { dataFilesOf } from '../api/paths.ts';
import { checkRunFiles, modelFolderFiles, passFiles, type RunFile } from '../api/run-files.ts';
import type { Model } from '../graph/ir/model.ts';
import type { SaveResult } from '../graph/serde/io.ts';
import { cleanupOnSignal } from '../graph/serde/temp-files.ts';
import { FolderError } from '../hf/errors.ts';
import { convertFolder, isFolder, planVariant, quantMeaning, scanModelFolder } from '../hf/folder.ts';
import { holdLateThrowsAfterFailure } from '../passes/calibration/supervise.ts';
import { type Logger, prefixedWarnings } from '../passes/log.ts';
import { type PassRecord, PassManager, type PassStep, type PipelineResult } from '../passes/manager.ts';
import type { PassRegistry } from '../passes/registry.ts';
import { listFlag, singleFlag } from './args.ts';
import type { CliCommand } from './command.ts';
import { CliError } from './errors.ts';
import { cliLogger, type GlobalFlags } from './io.ts';
import { buildSteps, type ConvertConfig, passOptionsFromArgs, readConfig } from './pipeline.ts';

/** Option names of this command and the global ones; any other key must be `--<pass>.<key>`. */
const OWN_KEYS = new Set(['_', '$0', 'input', 'output', 'pass', 'config', 'external-data', 'verify', 'stats', 'plugin', 'quiet', 'verbose', 'debug', 'help', 'version', 'variant', 'force']);

/** Runs `convert <input> …` with parsed arguments; returns the exit code. */
export async function runConvert(args: Record<string, unknown>, io: Parameters<CliCommand['run']>[1]): Promise<number> {
  // The process ends after a failure: a failed calibration module's later throws are caught, not printed as raw stacks.
  const release = holdLateThrowsAfterFailure();
  try {
    return await convertCommand(args, io);
  } finally {
    release();
  }
}

async function convertCommand(args: Record<string, unknown>, io: Parameters<CliCommand['run']>[1]): Promise<number> {
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
  if (folderMode && !variant) throw new CliError(`${input}: is a model folder; give --variant <name> (q8, q4, int8, or a name of your own) to write beside each fp32 graph in onnx/`);
  if (!folderMode && (variant !== undefined || args.force !== undefined)) throw new CliError(`${variant !== undefined ? '--variant' : '--force'} applies to a model folder input; ${input} is not a folder (for a file give -o <output.onnx>)`);
  if (!folderMode && !output) throw new CliError(`${input}: no output path; give -o <output.onnx>`);

  const configFile = singleFlag(args.config, '--config');
  const config: ConvertConfig | undefined = configFile ? readConfig(configFile) : undefined;
  const registry = await createRegistry([...(config?.plugins ?? []), ...listFlag(args.plugin, 'plugin')]);
  const steps = buildSteps(registry, config?.passes ?? [], listFlag(args.pass, 'pass', true), passOptionsFromArgs(args, OWN_KEYS, registry), configFile);

  // Ctrl-C / SIGTERM remove the temporary files (saves in progress, calibration's copy) and exit 130 / 143.
  if (folderMode) return cleanupOnSignal(io.err, () => runFolder(input, variant!, steps, args, io, log, registry, configFile));
  // The report lines are inside the handlers' scope too: a signal after the commit says the output is complete.
  return cleanupOnSignal(io.err, async () => {
    const r = await convertFile(input, output!, steps, {
      verify: args.verify === true ? true : args.verify === false ? false : undefined,
      log,
      verbose: Boolean(flags.verbose || flags.debug),
      externalData: args['external-data'] === true ? true : args['external-data'] === false ? false : 'auto',
      reads: readsOf(args, configFile),
    });
    if (args.stats) io.out(formatStats(r.passes, registry));
    const names = r.passes.map((p) => p.name);
    log.info(
      `wrote ${output} (${formatBytes(r.saved.bytes)}): ${r.nodesBefore} → ${r.nodesAfter} nodes, ${r.initializersBefore} → ${r.initializersAfter} initializers; ` +
        `passes: ${names.length ? names.join(', ') : 'none (round trip)'}; ${r.seconds.toFixed(1)} s` +
        (r.saved.staleDataPath ? `; ${r.saved.staleDataPath}, which the replaced output read, is left beside it (this output has none): remove it unless another model reads it` : ''),
    );
    logExternal(r.saved, log);
    return 0;
  });
}

/** Folder mode: every fp32 graph of `folder`'s onnx/ gets the variant beside it, written all at once. */
async function runFolder(folder: string, variant: string, steps: PassStep[], args: Record<string, unknown>, io: Parameters<CliCommand['run']>[1], log: Logger, registry: PassRegistry, configFile: string | undefined): Promise<number> {
  try {
    const plan = planVariant(scanModelFolder(folder), variant, quantMeaning(steps), args.force === true);
    const files = passFiles(steps);
    // Each graph's passes would write the same side files again, the last graph's winning.
    if (plan.targets.length > 1 && files.writes.length) {
      throw new CliError(`${folder}: ${files.writes[0]!.label} would be written once for each of the ${plan.targets.length} graphs (${plan.targets.map((t) => t.base).join(', ')}), each replacing the last; convert the graphs one at a time (convert ${folder}/onnx/<graph>.onnx -o …) to keep each one's`);
    }
    const variants = plan.targets.flatMap((t) => [{ label: `the ${variant} variant of ${t.base}`, path: t.output }, { label: `the data file of ${t.base}'s ${variant} variant`, path: join(plan.folder.onnxDir, t.dataFile) }]);
    const bases = plan.folder.bases.map((base) => ({ label: `the fp32 graph ${base}`, path: join(plan.folder.onnxDir, base) }));
    checkRunFiles([...bases, ...modelFolderFiles(plan.folder.onnxDir), ...readsOf(args, configFile), ...files.reads], [...variants, ...files.writes]);
    // Layers each quantization pass quantized over the whole set: a pass that quantized none in
    // any graph (a misspelt include, an fp16 folder) is refused, as it is on one model.
    const quantizedBy = new Map<string, number>();
    const written = await convertFolder(plan, {
      externalData: args['external-data'] === true ? true : args['external-data'] === false ? false : 'auto',
      log,
      runPasses: async (model, target) => {
        const t0 = performance.now();
        // The graph's data files are known once it is loaded (the folder has one graph when passes write side files).
        checkRunFiles(dataFilesOf(model).map((path) => ({ label: `${target.base}'s data file`, path })), files.writes);
        const before = countNodes(model);
        // With several graphs a warning ("pattern … matches no linear layer of this model") must say which graph it is about.
        const graphLog = plan.targets.length > 1 ? prefixedWarnings(log, `${target.base}: `) : log;
        const manager = new PassManager(steps, { verify: args.verify === true ? true : args.verify === false ? false : undefined, log: graphLog, verbose: Boolean(args.verbose || args.debug), modelDir: dirname(resolve(target.input)), partOfSet: plan.targets.length > 1 });
        let result: PipelineResult;
        try {
          result = await manager.run(model);
        } catch (e) {
          // With several graphs a pass's refusal (a merged decoder's If, a graph input text cannot make) must say which graph it is about.
          if (plan.targets.length > 1 && e instanceof Error) e.message = `${target.input}: ${e.message}`;
          throw e;
        }
        for (const r of result.passes) if ('layersQuantized' in r.stats) quantizedBy.set(r.name, (quantizedBy.get(r.name) ?? 0) + r.stats.layersQuantized!);
        if (args.stats) io.out(`${target.input}:\n${formatStats(result.passes, registry)}`);
        log.info(`${target.input}: ${before} → ${countNodes(model)} nodes; passes: ${result.passes.map((p) => p.name).join(', ') || 'none (round trip)'}; ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      },
      beforeCommit: () => {
        const none = [...quantizedBy].find(([, n]) => n === 0);
        if (none) throw new CliError(`${folder}: pass ${none[0]} quantized no layer in any of the folder's ${plan.targets.length} graphs (each graph's reason is in the warnings above); nothing was written`);
      },
    });
    for (const w of written) {
      const total = w.saved.bytes + (w.saved.externalDataBytes ?? 0);
      log.info(`wrote ${w.output} (${formatBytes(total)}, ${(total / w.baseBytes).toFixed(2)}× ${w.base}'s ${formatBytes(w.baseBytes)})`);
      logExternal(w.saved, log);
    }
    const stem = basename(written[0]!.output, '.onnx');
    if (plan.variant.isDtype) log.info(`load with pipeline(task, '${folder}', { dtype: '${variant}' })`);
    // model_file_name renames only the graph of the 'model' session (session_config.js); the other graphs of a folder
    // (encoder_model + decoder_model_merged, vision_encoder, …) are loaded under fixed names with a dtype's suffix, so no option loads these.
    else if (written.length > 1) log.warn(`'${variant}' is not a transformers.js dtype, and transformers.js cannot load a name of your own for this folder's ${written.length} graphs (${written.map((w) => w.base).join(', ')}): model_file_name renames one graph only, and models with several graphs (encoder-decoder, vision, …) load the others under fixed names plus a dtype's suffix; convert with a dtype name (--variant q8, q4, int8) to have them loaded`);
    // dtype 'fp32' is part of the hint: transformers.js appends the dtype's suffix to model_file_name, and without a dtype it takes
    // config.json's transformers.js_config.dtype or the device's default (q8 for wasm in the browser) → <stem>_quantized.onnx.
    else log.info(`'${variant}' is not a transformers.js dtype: load with pipeline(task, '${folder}', { model_file_name: '${stem}', dtype: 'fp32' }) (model_file_name names the graph file without onnx/ and .onnx; transformers.js appends the dtype's suffix to it, and fp32's is none)`);
    if (written.some((w) => w.saved.externalDataPath)) {
      log.info(`onnxruntime-node finds a variant's data file by the name recorded in it; in the browser transformers.js fetches it only when config.json's "transformers.js_config" has "use_external_data_format": { "${basename(written[0]!.output)}": 1 }`);
    }
    return 0;
  } catch (e) {
    if (e instanceof FolderError) throw new CliError(e.message, { cause: e });
    throw e;
  }
}

/** The files the command line names besides the model: the config file and plugin modules given as paths. */
function readsOf(args: Record<string, unknown>, configFile: string | undefined): RunFile[] {
  const plugins = listFlag(args.plugin, 'plugin').filter((p) => /^[./]|\.(m?[jt]s|cjs)$/.test(p));
  return [...(configFile ? [{ label: '--config', path: configFile }] : []), ...plugins.map((p) => ({ label: '--plugin', path: p }))];
}

function countNodes(model: Model): number {
  let n = 0;
  for (const _ of model.graph.allNodes()) n++;
  return n;
}

function logExternal(saved: SaveResult, log: ReturnType<typeof cliLogger>): void {
  if (saved.externalReason) log.info(`external data: ${saved.externalReason}`);
  if (saved.externalDataPath) log.info(`weights written to ${saved.externalDataPath} (${formatBytes(saved.externalDataBytes ?? 0)}${saved.externalDataTakenOver ? `; the quantized weights' ${formatBytes(saved.externalDataTakenOver)} were written there once, as they were made, not copied at the save` : ''})`);
  if (saved.takeOverRefused) log.info(`the quantized weights were copied from their scratch file at the save, not taken over with it (${saved.takeOverRefused}; docs/scale.md)`);
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
