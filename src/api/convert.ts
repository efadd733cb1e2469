/**
 * One model file in, one out: load, run a pipeline of passes, save atomically. The `convert`
 * CLI (file mode) and the library's {@link convert} and `quantize` all go through
 * {@link convertFile}, so the CLI and the API check paths, run passes and save the same way.
 */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Model } from '../graph/ir/model.ts';
import { ModelFileError } from '../graph/serde/errors.ts';
import { loadModel, modelTensors, PROTOBUF_LIMIT_BYTES, type SaveResult, writeModelFiles } from '../graph/serde/io.ts';
import { SpillPlace } from '../graph/serde/spill-file.ts';
import { letSignalsRun, noteCommitted } from '../graph/serde/temp-files.ts';
import type { CalibrationModule } from '../passes/calibration/module.ts';
import { type Logger, recordingWarnings, silentLogger } from '../passes/log.ts';
import { InvalidInputError, PassFailure, PassManager, type PassRecord, type PassStep } from '../passes/manager.ts';
import type { Plugin } from '../passes/plugin.ts';
import { resolveOptions } from '../passes/pass.ts';
import { createRegistry } from './registry.ts';
import { ConvertError } from './errors.ts';
import { checkDataFiles, checkOutputPath, dataFilesOf } from './paths.ts';
import { checkRunFiles, modelFolderFiles, passFiles, type RunFile } from './run-files.ts';

/** How {@link convertFile} runs. */
export interface ConvertFileOptions {
  /**
   * Where the initializers go: `true` every one of 1 KiB or more to `<output>.data`, `false`
   * all inline, `'auto'` (default) inline unless the input reads external data or the model
   * would pass protobuf's 2 GiB limit.
   */
  externalData?: boolean | 'auto';
  /** Verify the graph before the first pass and after each (default: off, on under vitest). */
  verify?: boolean;
  /**
   * Where passes report progress, results and warnings (default: silent; the warnings are in
   * {@link ConvertResult.warnings} either way). `createLogger({ write: (l) => console.error(l) })`
   * prints what the CLI prints.
   */
  log?: Logger;
  /** Let passes log more detail. */
  verbose?: boolean;
  /** A calibration module object for quantization passes, instead of their `calib` or `prompts` option (a pass given both refuses to run). */
  calibration?: CalibrationModule;
  /** Other files the caller read for this run (a config file, plugin modules): no output may replace them. */
  reads?: readonly RunFile[];
}

/** What {@link convertFile} did. */
export interface ConvertResult {
  /** What each pass did: its statistics, report and time, in order. */
  passes: readonly PassRecord[];
  /** The files written. */
  saved: SaveResult;
  /** Nodes of the model as loaded, subgraphs included. */
  nodesBefore: number;
  /** Nodes of the model as saved, subgraphs included. */
  nodesAfter: number;
  /** Initializers of the main graph as loaded. */
  initializersBefore: number;
  /** Initializers of the main graph as saved. */
  initializersAfter: number;
  /** Wall time of load, passes and save. */
  seconds: number;
  /** Every warning the passes logged (`[pass] message`), printed or not: what the CLI shows as `warning:` lines. */
  warnings: readonly string[];
}

/**
 * Loads `input`, runs `steps` in order and saves the result to `output` (written under a
 * temporary name and renamed, so a failure leaves no partial file). With no steps the model
 * is round-tripped. Refuses an output that is the input or one of its data files.
 * @throws ModelFileError naming the input when it is missing, unreadable or structurally invalid
 * @throws ConvertError naming the output when it is not a safe place to write
 * @throws PassFailure naming the pass (and its plugin) that failed
 */
export async function convertFile(input: string, output: string, steps: readonly PassStep[], options: ConvertFileOptions = {}): Promise<ConvertResult> {
  if (!existsSync(input)) throw new ModelFileError(input, 'no such file');
  checkOutputPath(input, output);
  const t0 = performance.now();
  const model = loadModel(input);
  checkDataFiles(model, input, output);
  const files = passFiles(steps);
  const inputFiles = [{ label: 'the input model', path: input }, ...dataFilesOf(model).map((path) => ({ label: `the input's data file`, path })), ...modelFolderFiles(dirname(resolve(input)))];
  checkRunFiles([...inputFiles, ...(options.reads ?? []), ...files.reads], [{ label: 'the output', path: output }, { label: "the output's data file", path: `${output}.data` }, ...files.writes]);
  // A model that reads its weights from a data file is written with one too: an inline save
  // would hold the whole output in memory at once (docs/scale.md).
  const mode = options.externalData ?? 'auto';
  const streamed = mode === 'auto' && [...modelTensors(model)].some((t) => t.external !== undefined);
  const nodesBefore = countNodes(model);
  const initializersBefore = model.graph.initializers.size;
  const warnings: string[] = [];
  // A streamed conversion's quantized weights wait for the save beside the output, where the
  // save can take their file over as the data file (docs/scale.md); removed if it does not.
  const spill = streamed || mode === true ? new SpillPlace(`${resolve(output)}.data`) : undefined;
  const manager = new PassManager(steps, {
    verify: options.verify,
    log: recordingWarnings(options.log ?? silentLogger, warnings),
    verbose: options.verbose ?? false,
    modelDir: dirname(resolve(input)),
    calibration: options.calibration,
    ...(spill ? { spill } : {}),
  });
  let saved: SaveResult;
  let records: readonly PassRecord[];
  try {
    const result = await manager.run(model).catch((e: unknown) => {
      // What the passes warned before one failed often explains the failure (a few-samples or a
      // damping warning): the API has no result to carry them, so the error does.
      if (e instanceof PassFailure) e.warnings = [...warnings];
      // The structural checks found the input broken: name the file, not "the input model".
      throw e instanceof InvalidInputError ? new ModelFileError(input, e.message.replace(/^the input model /, ''), { cause: e }) : e;
    });
    records = result.passes;
    const pending = writeModelFiles(model, output, { externalData: streamed || mode, reportStaleData: true });
    // A Ctrl-C that came while the passes or the save kept this thread busy is handled here
    // (the CLI's handler removes the temporary files and exits), not after the output is in place.
    await letSignalsRun();
    saved = pending.commit();
  } finally {
    spill?.release();
  }
  noteCommitted([output]);
  if (streamed && saved.externalDataPath) {
    // One file is an option only when the weights fit in one (a review: a 5.19 GiB output was offered it).
    const fits = (saved.externalDataBytes ?? 0) < PROTOBUF_LIMIT_BYTES;
    saved.externalReason = `the input reads its weights from external data, so the output does too${fits ? ' (--no-external-data, or externalData: false in the API, for one file)' : ' (over 2 GiB: it cannot be one file)'}`;
  }
  return {
    passes: records,
    saved,
    nodesBefore,
    nodesAfter: countNodes(model),
    initializersBefore,
    initializersAfter: model.graph.initializers.size,
    seconds: (performance.now() - t0) / 1000,
    warnings,
  };
}

/** One pass of a {@link convert} pipeline: its name, or its name and options. */
export type PassSpec =
  | string
  | {
      /** The pass's name (see `convert passes`). */
      name: string;
      /** Its options by CLI key (`{ 'w-bits': 4 }`), checked before the model is loaded. */
      options?: Record<string, unknown>;
    };

/** Options of {@link convert}. */
export interface ConvertOptions extends ConvertFileOptions {
  /** The passes to run, in order (see `convert passes`); none: a round trip. */
  passes?: readonly PassSpec[];
  /** Plugins whose passes may be named besides the bundled ones: module paths or plugin objects. */
  plugins?: readonly (string | Plugin)[];
}

/**
 * Runs passes by name on a model file, as `convert <input> -o <output> --pass …` does.
 * Options use the CLI's kebab-case keys (`{ name: 'q-arvd', options: { 'w-bits': 4 } }`);
 * every pass name, option name, type and choice is checked before the model is loaded (an
 * option's range, by the pass when it runs: a `PassFailure`).
 * @example
 * ```ts
 * await convert('model.onnx', 'model.clean.onnx', { passes: ['constants-to-initializers', 'dce'] });
 * ```
 */
export async function convert(input: string, output: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  const registry = await createRegistry(options.plugins ?? []);
  const steps = (options.passes ?? []).map((spec) => {
    const { name, options: raw = {} } = typeof spec === 'string' ? { name: spec } : spec;
    try {
      const step = registry.step(name, raw);
      resolveOptions(step.pass, step.options);
      return step;
    } catch (e) {
      throw new ConvertError((e as Error).message, { cause: e });
    }
  });
  return convertFile(input, output, steps, options);
}

function countNodes(model: Model): number {
  let n = 0;
  for (const _ of model.graph.allNodes()) n++;
  return n;
}
