import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Model } from '../ir/model.ts';
import type { Tensor } from '../ir/tensor.ts';
import { decodeModel, encodeMessageTo } from '../proto/codec.ts';
import type { ModelProto } from '../proto/schema.ts';
import { CommitError, commitFiles } from './commit.ts';
import { realFolder } from './data-file.ts';
import { errnoText, isErrno, ModelFileError } from './errors.ts';
import { specialFileKind } from './file-kind.ts';
import { HOST_TAG } from './host-tag.ts';
import { escapeRegExp, removeStaleTemps } from './stale-temps.ts';
import { tempSuffix, trackTemp, untrackTemp } from './temp-files.ts';
import { ExternalDataSink, inlineSink, NotTakenOver } from './external-sink.ts';
import { modelFromProto } from './from-proto.ts';
import type { SpillFile } from './spill-file.ts';
import { modelToProto, type TensorSink } from './to-proto.ts';

/** The protobuf limit: a serialized message may not reach 2 GiB. */
export const PROTOBUF_LIMIT_BYTES = 2 ** 31;
/** Room left for everything that is not tensor data when deciding to go external. */
const NON_TENSOR_MARGIN = 64 * 2 ** 20;

/**
 * Loads a model from a file (external data resolves against its folder and is read lazily)
 * or from bytes (external data then needs `baseDir`).
 */
export function loadModel(source: string | Uint8Array, options: { baseDir?: string; file?: string } = {}): Model {
  if (typeof source === 'string') {
    const file = source;
    if (!existsSync(file)) throw new ModelFileError(file, 'no such file');
    const st = statSync(file);
    if (st.isDirectory()) throw new ModelFileError(file, 'is a folder, not an .onnx file');
    if (!st.isFile()) throw new ModelFileError(file, `is ${specialFileKind(st)}, not a regular file`);
    if (st.size >= PROTOBUF_LIMIT_BYTES) throw new ModelFileError(file, `is ${st.size} bytes, over the 2 GiB protobuf limit`);
    const model = loadModel(readFileSync(file), { baseDir: dirname(resolve(file)), file });
    return model;
  }
  const file = options.file ?? '(bytes)';
  if (source.byteLength === 0) throw new ModelFileError(file, 'is empty');
  let proto: Record<string, unknown>;
  try {
    proto = decodeModel(source) as Record<string, unknown>;
  } catch (e) {
    throw new ModelFileError(file, `not an ONNX model, or truncated (protobuf decoding failed: ${(e as Error).message})`);
  }
  if (proto.graph === undefined || !proto.ir_version) {
    throw new ModelFileError(file, 'not an ONNX model (no graph or IR version in the protobuf)');
  }
  return modelFromProto(proto, { file, baseDir: options.baseDir });
}

/** How to save. */
export interface SaveOptions {
  /**
   * `true`: every tensor of at least 1 KiB goes to the data file; `false`: all inline (fails
   * over 2 GiB); `'auto'` (default): inline unless the model would pass the protobuf limit.
   */
  externalData?: boolean | 'auto';
  /**
   * File name of the data file, beside the output (default `<output file>.data`);
   * transformers.js expects `<output file>_data`. A plain name, no folders.
   */
  dataFileName?: string;
  /**
   * Report the data file of the output being replaced (`<output file>.data`, or
   * `dataFileName`) when the previous output read its weights from it and this save does not
   * write one: it stays beside the new self-contained model, a stale copy of old weights.
   * It is never removed: another model (a copy of the old output) may still read it.
   */
  reportStaleData?: boolean;
}

/** What a save did, for the CLI to report. */
export interface SaveResult {
  path: string;
  bytes: number;
  /** The data file written, when external data was used. */
  externalDataPath?: string;
  externalDataBytes?: number;
  /**
   * Bytes of the data file that were a pass's spill file, renamed into place rather than
   * copied (see spill-file.ts); absent when none was.
   */
  externalDataTakenOver?: number;
  /**
   * Why a pass's spill file beside the output could not become the data file (its tensors were
   * copied instead); absent when there was none, or when it did.
   */
  takeOverRefused?: string;
  /** Why external data was used when it was not asked for. */
  externalReason?: string;
  /** The previous output's data file, left beside an output that has none (`reportStaleData`). */
  staleDataPath?: string;
}

/**
 * Saves atomically: the model (and its data file) are written under temporary names and
 * renamed into place only when complete, both or neither (see {@link commitFiles}), so a
 * failed save leaves no partial output and the previous files as they were. Refuses to write
 * into a data file that the model itself reads from.
 * @throws ModelFileError naming `path`
 */
export function saveModel(model: Model, path: string, options: SaveOptions = {}): SaveResult {
  return writeModelFiles(model, path, options).commit();
}

/** A save whose temporary files are written: {@link PendingSave.commit} puts them in place. */
export interface PendingSave {
  /** Renames the temporary files into place (all or nothing) and returns what was written. */
  commit(): SaveResult;
}

/**
 * The first half of {@link saveModel}: writes the model (and its data file) under temporary
 * names, registered with `trackTemp` so that a signal removes them, and leaves the rename to
 * the caller. The CLI commits only after a pending Ctrl-C has had its chance to run.
 * @throws ModelFileError naming `path`
 */
export function writeModelFiles(model: Model, path: string, options: SaveOptions = {}): PendingSave {
  const out = resolve(path);
  const dataName = options.dataFileName ?? `${basename(out)}.data`;
  if (basename(dataName) !== dataName || dataName === basename(out)) throw new ModelFileError(path, `data file name '${dataName}' must be a plain file name other than the model's`);
  const dataPath = resolve(dirname(out), dataName);
  const mode = options.externalData ?? 'auto';
  const inlineBytes = sumTensorBytes(model);
  let external = mode === true;
  let externalReason: string | undefined;
  if (mode === 'auto' && inlineBytes + NON_TENSOR_MARGIN >= PROTOBUF_LIMIT_BYTES) {
    external = true;
    externalReason = `the weights (${inlineBytes} bytes) would exceed the 2 GiB protobuf limit; writing them to ${dataName}`;
  }
  if (external && readsFrom(model, dataPath)) {
    throw new ModelFileError(path, `would overwrite ${dataName}, the external data file the model reads its weights from; choose another output name`);
  }
  // A run killed before it could remove its temporary files (SIGKILL, the OOM killer) left
  // them here: a save's (.tmp) and a pass's spill file (.spill; this run's own is live, and kept).
  removeStaleTemps(dirname(out), new RegExp(`^(?:${escapeRegExp(basename(out))}|${escapeRegExp(dataName)})\\.(\\d+)\\.\\d+\\.${HOST_TAG}\\.(?:tmp|spill)$`));
  const suffix = tempSuffix();
  const tmpModel = out + suffix;
  // Registered so that Ctrl-C or a calibration watchdog removes them too.
  const removers = [trackTemp(tmpModel)];
  const discard = () => {
    for (const remove of removers) {
      try {
        remove();
      } catch {
        // Best effort: the error that made the save fail is the one to report.
      }
    }
  };
  // A file-system error names the temporary file: name the user's output instead.
  const named = (e: unknown) => (isErrno(e) ? new ModelFileError(path, `cannot write: ${errnoText(e)}`, { cause: e }) : e);
  let modelBytes: number;
  let wroteData: boolean;
  let sink: TensorSink = inlineSink;
  let tmpData: string | undefined;
  let spill: SpillFile | undefined;
  let refused: string | undefined;
  try {
    let proto: ModelProto | undefined;
    // A pass's spill file beside the output, laid out as the data file would be, becomes it
    // when the model's tensors start with its own, in its order (spill-file.ts): renamed into
    // place at the commit instead of read and written again.
    spill = external ? spillBeside(model, dataPath) : undefined;
    if (spill) {
      tmpData = spill.path!;
      removers.push(trackTemp(tmpData));
      const taking = new ExternalDataSink(tmpData, dataName, spill);
      sink = taking;
      try {
        proto = modelToProto(model, taking) as ModelProto;
        taking.checkTakenOver();
      } catch (e) {
        if (!(e instanceof NotTakenOver)) throw e;
        // Nothing was written to it: save as usual, copying the spilled tensors. The spill
        // file stays its pass's to remove.
        refused = e.message;
        removers.pop();
        proto = undefined;
      }
    }
    if (external && !proto) {
      tmpData = dataPath + suffix;
      removers.push(trackTemp(tmpData));
      sink = new ExternalDataSink(tmpData, dataName);
    }
    proto ??= modelToProto(model, sink) as ModelProto;
    // Streamed: an inline model's tensors are read one at a time as they are written, so the
    // save holds one of them, not the whole model twice (docs/scale.md). Sized before a weight
    // is read: a model that cannot be one file is refused without reading 5 GB first.
    modelBytes = writeEncoded(tmpModel, proto, (size) => {
      if (size >= PROTOBUF_LIMIT_BYTES) {
        throw new ModelFileError(path, `cannot be one file: it would be ${size} bytes, over the 2 GiB protobuf limit of an ONNX file; write it with external data (without --no-external-data; externalData 'auto' or true in the API)`);
      }
    });
    wroteData = sink instanceof ExternalDataSink && sink.close();
  } catch (e) {
    try {
      if (sink instanceof ExternalDataSink) sink.close();
    } catch {
      // As for discard: keep the first error.
    }
    discard();
    throw named(e);
  }
  return {
    commit: () => {
      // Read at commit time: the previous output is what this commit replaces.
      const stale = options.reportStaleData && !wroteData && previousReads(out, dataPath) && !readsFrom(model, dataPath);
      try {
        commitFiles([...(wroteData ? [{ temp: tmpData!, final: dataPath }] : []), { temp: tmpModel, final: out }]);
      } catch (e) {
        discard();
        if (!(e instanceof CommitError)) throw named(e);
        throw new ModelFileError(path, `cannot write${e.final === dataPath ? ` its data file ${dataName}` : ''}: ${e.why}; ${e.left}`, { cause: e });
      }
      for (const t of [tmpModel, tmpData]) if (t) untrackTemp(t);
      const result: SaveResult = { path: out, bytes: modelBytes };
      if (wroteData) {
        const data = sink as ExternalDataSink;
        result.externalDataPath = dataPath;
        result.externalDataBytes = data.bytesWritten;
        if (data.bytesTakenOver) {
          spill!.takenOver();
          result.externalDataTakenOver = data.bytesTakenOver;
        }
      }
      if (externalReason) result.externalReason = externalReason;
      if (refused) result.takeOverRefused = refused;
      if (stale) result.staleDataPath = dataPath;
      return result;
    },
  };
}

/** Every tensor of the model: initializers and tensor attributes, subgraphs included. */
export function* modelTensors(model: Model): IterableIterator<Tensor> {
  const graphs = [model.graph];
  while (graphs.length) {
    const g = graphs.pop()!;
    for (const v of g.initializers.values()) yield v.initializer!;
    for (const n of g) {
      for (const a of n.attributes.values()) {
        if (a.type === 4) yield a.value as Tensor;
        if (a.type === 9) yield* a.value as Tensor[];
      }
      graphs.push(...n.subgraphs());
    }
  }
}

/**
 * The named spill file (spill-file.ts) in the folder of `dataPath` that the model's tensors
 * wait in, if any: the one a save may take over as its data file. Only a rename within one
 * folder puts it in place, so a spill file elsewhere is copied as usual.
 */
function spillBeside(model: Model, dataPath: string): SpillFile | undefined {
  const folder = dirname(dataPath);
  for (const t of modelTensors(model)) {
    const file = t.spilled?.file;
    if (file?.path !== undefined && file.size > 0 && dirname(file.path) === folder) return file;
  }
  return undefined;
}

function sumTensorBytes(model: Model): number {
  let total = 0;
  for (const t of modelTensors(model)) total += t.byteLength;
  return total;
}

/** Writes the encoding of `proto` to a new file `path` as it is produced (`sized`: see encodeMessageTo); returns its length. */
function writeEncoded(path: string, proto: ModelProto, sized: (total: number) => void): number {
  const fd = openSync(path, 'w');
  try {
    return encodeMessageTo(
      'ModelProto',
      proto,
      (bytes) => {
        for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
      },
      sized,
    );
  } finally {
    closeSync(fd);
  }
}

/**
 * True when the model file at `out` (the output about to be replaced) reads weights from
 * `dataPath`, going by its external-data locations. Parsed only when that data file exists; a
 * previous output that cannot be read (not a model, its data short) counts as not reading it.
 */
function previousReads(out: string, dataPath: string): boolean {
  if (!existsSync(dataPath) || !existsSync(out)) return false;
  try {
    return readsFrom(loadModel(out), dataPath);
  } catch {
    return false;
  }
}

function readsFrom(model: Model, dataPath: string): boolean {
  // The loader records real paths: compare with the real path of the would-be data file.
  const real = resolve(realFolder(dirname(dataPath)), basename(dataPath));
  for (const t of modelTensors(model)) if (t.external?.path === dataPath || t.external?.path === real) return true;
  return false;
}
