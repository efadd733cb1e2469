/**
 * Folder mode of `convert`: a transformers.js / optimum model folder (`config.json`, the
 * tokenizer, `onnx/*.onnx`) in, one variant of every fp32 graph written beside it.
 *
 * Rules:
 * 1. A folder needs `config.json` and an `onnx/` folder with at least one fp32 base graph.
 * 2. The base graphs are the `onnx/*.onnx` files whose name does not end in a dtype suffix
 *    (`_quantized`, `_q4`, …) and that are not a variant this tool wrote (it records
 *    `qarvd.variant` in the metadata of every variant; only names `<base>_<x>.onnx` beside an
 *    existing `<base>.onnx` are opened to look).
 * 3. The variant of `onnx/<base>.onnx` is `onnx/<base><suffix>.onnx` (see dtypes.ts); its
 *    external data, when it has any, is `<variant file>_data`, never the fp32 one's file.
 * 4. A variant file (or its data file) that exists is not replaced without `force`, checked
 *    when the run begins and again before the commit (another run may have written it); a variant
 *    name that would land on a base graph, or a data file that a base graph reads, is refused
 *    even with `force`. The fp32 files are never written.
 * 5. All variants are written into a staging folder inside `onnx/` and renamed into place
 *    only when every graph is done, all or nothing, so a failure (or Ctrl-C) leaves the folder
 *    as it was.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Model } from '../graph/ir/model.ts';
import { CommitError, commitFiles } from '../graph/serde/commit.ts';
import { linkedOutside } from '../graph/serde/data-file.ts';
import { ModelFileError } from '../graph/serde/errors.ts';
import { specialFileKind } from '../graph/serde/file-kind.ts';
import { loadModel, modelTensors, saveModel, type SaveResult } from '../graph/serde/io.ts';
import { HOST_TAG } from '../graph/serde/host-tag.ts';
import { removeStaleTemps } from '../graph/serde/stale-temps.ts';
import { letSignalsRun, noteCommitted, trackTemp } from '../graph/serde/temp-files.ts';
import type { Logger } from '../passes/log.ts';
import type { PassStep } from '../passes/manager.ts';
import { resolveOptions } from '../passes/pass.ts';
import { checkVariantMeaning, DTYPE_SUFFIX, type QuantMeaning, resolveVariantName, type VariantName } from './dtypes.ts';
import { FolderError } from './errors.ts';

/** Metadata key recorded in every variant (its name); marks the file as not a base graph. */
export const VARIANT_METADATA_KEY = 'qarvd.variant';

/** A model folder as found on disk. */
export interface ModelFolder {
  /** The folder as given (for messages). */
  dir: string;
  onnxDir: string;
  /** File names of the fp32 base graphs in `onnx/`, sorted. */
  bases: string[];
}

/** True when `path` is a folder (the CLI's switch into folder mode). */
export function isFolder(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

/** Finds the base graphs of a model folder (rules 1–2). */
export function scanModelFolder(dir: string): ModelFolder {
  if (!existsSync(join(dir, 'config.json'))) {
    throw new FolderError(`${dir}: not a transformers.js model folder: no config.json (a folder needs config.json, the tokenizer files and onnx/*.onnx, as optimum exports them)`);
  }
  checkConfig(join(dir, 'config.json'));
  const onnxDir = join(dir, 'onnx');
  if (!isFolder(onnxDir)) throw new FolderError(`${dir}: no onnx/ folder; transformers.js loads the graphs from onnx/<name>.onnx`);
  const files = readdirSync(onnxDir).filter((f) => f.endsWith('.onnx') && statSync(join(onnxDir, f)).isFile()).sort();
  const suffixes = Object.values(DTYPE_SUFFIX).filter((s) => s !== '');
  const stems = new Set(files.map((f) => f.slice(0, -'.onnx'.length)));
  const bases = files.filter((f) => {
    const stem = f.slice(0, -'.onnx'.length);
    if (suffixes.some((s) => stem.endsWith(s))) return false;
    const mayBeVariant = [...stems].some((b) => b !== stem && stem.startsWith(`${b}_`));
    return !(mayBeVariant && loadModel(join(onnxDir, f)).metadata.has(VARIANT_METADATA_KEY));
  });
  if (bases.length === 0) {
    throw new FolderError(`${onnxDir}: no fp32 base graph (like model.onnx or decoder_model_merged.onnx)${files.length ? `; it holds only variants: ${files.join(', ')}` : '; it holds no .onnx file'}`);
  }
  return { dir, onnxDir, bases };
}

/**
 * Refuses a `config.json` that transformers.js could not read (a user trial: a truncated one
 * was accepted, and the variant written into a folder nothing could load).
 */
function checkConfig(path: string): void {
  let text: string;
  try {
    const st = statSync(path);
    // A FIFO would block the read for good; a link out of the folder is refused as the model's data locations are.
    if (!st.isFile()) throw new FolderError(`${path}: is ${st.isDirectory() ? 'a folder' : specialFileKind(st)}, not a regular file`);
    const target = linkedOutside(dirname(path), path);
    if (target) throw new FolderError(`${path}: links outside the model folder (to ${target}); refusing to read it (copy the folder with its links followed, cp -rL, if you trust them)`);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if (e instanceof FolderError) throw e;
    throw new FolderError(`${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new FolderError(`${path}: not valid JSON (${(e as Error).message}); transformers.js reads it to load the model`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new FolderError(`${path}: holds ${Array.isArray(config) ? 'an array' : config === null ? 'null' : `a ${typeof config}`}, not the JSON object of a model's configuration`);
  }
}

/**
 * What the steps make of the weights: the options of the last step whose pass declares
 * `w-bits` and `a-bits` (q-arvd, minmax, or a plugin's quantizer).
 */
export function quantMeaning(steps: readonly PassStep[]): QuantMeaning {
  const quant = steps.filter((s) => 'w-bits' in s.pass.options && 'a-bits' in s.pass.options).at(-1);
  if (!quant) return {};
  const o = resolveOptions(quant.pass, quant.options) as { wBits: string; aBits: string; wSymmetric?: boolean };
  return { pass: quant.pass.name, wBits: Number(o.wBits), aBits: o.aBits === 'none' ? null : Number(o.aBits), wSymmetric: o.wSymmetric === true };
}

/** One graph to write: `onnx/<base>.onnx` → `onnx/<base><suffix>.onnx`. */
export interface VariantTarget {
  base: string;
  input: string;
  output: string;
  /** The data file name the variant uses if it has external data. */
  dataFile: string;
}

/** The variant to write for every base graph, checked (rules 3–4). */
export interface VariantPlan {
  folder: ModelFolder;
  variant: VariantName;
  targets: VariantTarget[];
  force: boolean;
}

/** Resolves the variant name, checks it against what the steps produce and against the files there. */
export function planVariant(folder: ModelFolder, name: string, meaning: QuantMeaning, force: boolean): VariantPlan {
  const variant = resolveVariantName(name);
  checkVariantMeaning(variant, meaning);
  const targets = folder.bases.map((base) => {
    const stem = base.slice(0, -'.onnx'.length);
    const file = `${stem}${variant.suffix}.onnx`;
    return { base, input: join(folder.onnxDir, base), output: join(folder.onnxDir, file), dataFile: `${file}_data` };
  });
  for (const t of targets) {
    if (folder.bases.includes(basename(t.output))) {
      throw new FolderError(`--variant ${name}: ${t.base}'s variant would be ${t.output}, which is itself an fp32 base graph; pick another name`);
    }
  }
  if (!force) {
    const existing = existingVariantFiles(folder, targets);
    if (existing.length) {
      throw new FolderError(`${existing.join(', ')} already exist${existing.length === 1 ? 's' : ''}; add --force to replace ${existing.length === 1 ? 'it' : 'them'} (the fp32 graphs are never written)`);
    }
  }
  return { folder, variant, targets, force };
}

/** The files of `targets` (variant graphs and their data files) that exist now. */
function existingVariantFiles(folder: ModelFolder, targets: readonly VariantTarget[]): string[] {
  return targets.flatMap((t) => [t.output, join(folder.onnxDir, t.dataFile)]).filter((f) => existsSync(f));
}

/** What folder mode did, per graph. */
export interface WrittenVariant extends VariantTarget {
  saved: SaveResult;
  /** Bytes of the fp32 graph with its data files. */
  baseBytes: number;
}

/** How {@link convertFolder} runs. */
export interface ConvertFolderOptions {
  externalData: boolean | 'auto';
  log: Logger;
  /** Runs the passes on one loaded base graph (the CLI's pass manager). */
  runPasses(model: Model, target: VariantTarget): Promise<void>;
  /** Called once every graph is staged, before any is moved into onnx/: a throw writes nothing. */
  beforeCommit?(): void;
}

/**
 * Saves a variant into the staging folder; an error names the variant's own path, never the
 * staging one (a full disk named `.convert-<pid>-<ms>-<tag>.staging/model_quantized.onnx`).
 */
function saveStaged(model: Model, staged: string, target: VariantTarget, externalData: boolean | 'auto'): SaveResult {
  try {
    return saveModel(model, staged, { externalData, dataFileName: target.dataFile });
  } catch (e) {
    if (e instanceof ModelFileError && e.file === staged) throw new ModelFileError(target.output, e.message.slice(e.file.length + 2), { cause: e });
    throw e;
  }
}

/**
 * Loads every base graph, runs the passes, saves each variant into a staging folder, then
 * moves them all into `onnx/` at once (rule 5): on a failure part way every file of every
 * variant is as it was (see {@link commitFiles}). Returns what was written.
 * @throws FolderError naming the variant file that could not be moved into place
 */
export async function convertFolder(plan: VariantPlan, options: ConvertFolderOptions): Promise<WrittenVariant[]> {
  const { folder, targets } = plan;
  // Staging folders of runs killed before they could remove them (SIGKILL, the OOM killer).
  removeStaleTemps(folder.onnxDir, new RegExp(`^\\.convert-(\\d+)-\\d+-${HOST_TAG}\\.staging$`));
  const staging = join(folder.onnxDir, `.convert-${process.pid}-${Date.now()}-${HOST_TAG}.staging`);
  const protectedFiles = new Set<string>(folder.bases.map((b) => realpathSync(join(folder.onnxDir, b))));
  const staged: { target: VariantTarget; saved: SaveResult; baseBytes: number }[] = [];
  mkdirSync(staging);
  // Finished variants wait here, maybe for hours: Ctrl-C must not leave them in onnx/.
  const removeStaging = trackTemp(staging);
  try {
    for (const target of targets) {
      const model = loadModel(target.input);
      const dataFiles = new Set<string>();
      for (const t of modelTensors(model)) if (t.external) dataFiles.add(t.external.path);
      for (const f of dataFiles) if (existsSync(f)) protectedFiles.add(realpathSync(f));
      await options.runPasses(model, target);
      model.metadata.set(VARIANT_METADATA_KEY, plan.variant.name);
      const saved = saveStaged(model, join(staging, basename(target.output)), target, options.externalData);
      const baseBytes = [target.input, ...dataFiles].reduce((s, f) => s + (existsSync(f) ? statSync(f).size : 0), 0);
      staged.push({ target, saved, baseBytes });
    }
    options.beforeCommit?.();
    // Checked when the run began; a run beside this one may have written a variant since.
    const appeared = plan.force ? [] : existingVariantFiles(folder, targets);
    if (appeared.length) {
      throw new FolderError(`${appeared.join(', ')} appeared while this run was converting (another run writing the same variant?); nothing was written: add --force to replace ${appeared.length === 1 ? 'it' : 'them'}`);
    }
    for (const { target } of staged) {
      for (const f of [target.output, join(folder.onnxDir, target.dataFile)]) {
        if (existsSync(f) && protectedFiles.has(realpathSync(f))) throw new FolderError(`${f}: is read by an fp32 graph; it is never replaced, pick another --variant name`);
      }
    }
    // A Ctrl-C that came while this thread was busy is handled here, before anything is moved.
    await letSignalsRun();
    try {
      commitFiles(
        staged.flatMap(({ target, saved }) => [
          // Without a data file of its own now, a variant replaced under --force loses its stale one.
          { temp: saved.externalDataPath, final: join(folder.onnxDir, target.dataFile) },
          { temp: saved.path, final: target.output },
        ]),
      );
    } catch (e) {
      if (e instanceof CommitError) throw new FolderError(`${e.final}: cannot move the ${plan.variant.name} variant into place: ${e.why}; no variant was written, ${e.left}`, { cause: e });
      throw e;
    }
    noteCommitted(staged.map(({ target }) => target.output));
    return staged.map(({ target, saved, baseBytes }) => {
      const finalData = join(folder.onnxDir, target.dataFile);
      return { ...target, baseBytes, saved: { ...saved, path: resolve(target.output), externalDataPath: saved.externalDataPath ? resolve(finalData) : undefined } };
    });
  } finally {
    removeStaging();
  }
}
