/**
 * A saved collect step (`save-statistics` / `load-statistics`): what calibration's collect
 * step kept of one run of the calibration module through one model — per observed layer input
 * and chunk the exact ranges, the extreme rows, the reservoir and, when reconstruction asked
 * for them, both folds' Gram matrices and row sums. Everything after the collect step (S1,
 * the scale search at the run's bit-widths, reconstruction) reads only these, so a run that
 * loads the file quantizes exactly as if it had collected them itself; several bit-widths of
 * one model then pay for the collection (the most expensive step) once.
 *
 * The file is checked against the run that loads it: the SHA-256 of the augmented model
 * (the model and the observed layers), the module's file (its real path: `./m.mjs` and `m.mjs`
 * are one module, two `m.mjs` in two folders are two) and sample count, the reservoir size
 * and the Gram stride must match; a run needing Gram matrices refuses a file without them.
 * The module's code is not hashed: a changed module under the same path must be collected
 * again.
 *
 * The header's `sha256` is the SHA-256 of the data followed by the rest of the header: a file
 * changed after it was written (a bad disk, a partial copy, an edit) is refused rather than
 * quantized from. Files without it (earlier builds) are still read, unchecked.
 *
 * Layout (tagged-file.ts): the tag `QARVDCOL`, the JSON header (see {@link Header}), then
 * the arrays, each at an 8-aligned offset from the start of the data, little-endian.
 * Size: per input and chunk 2·K floats of ranges, (reservoir + 16)·K floats of rows and,
 * with Gram matrices, 16·K² + 16·K bytes.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import type { Value } from '../../graph/ir/value.ts';
import type { CollectedStats } from './collect.ts';
import { type ChunkGram, GramStats } from './gram.ts';
import { readTaggedFile, writeTaggedFile } from './tagged-file.ts';
import { type ChunkSnapshot, TensorStats } from './tensor-stats.ts';

const MAGIC = 'QARVDCOL';
const VERSION = 1;

/** What a saved collection was made from; a loading run must match it. */
export interface StatsIdentity {
  /** {@link CalibrationSession.fingerprint} of the run. */
  model: string;
  /** The module as the run named it (what messages show). */
  origin: string;
  /**
   * The files the samples come from, as real paths ({@link LoadedCalibration.source}); what is
   * compared when both sides have it. Files saved before it was recorded are compared by
   * `origin`, as they were.
   */
  source?: string;
  samples: number;
  reservoirRows: number;
  /** The Gram stride, or null when no Gram matrices were collected. */
  gramStride: number | null;
}

/** An array in the data section: offset (bytes from the data start), element count, type. */
type Blob = [offset: number, length: number, type: 'f32' | 'f64'];

interface Header {
  version: number;
  /** SHA-256 (hex) of the data then of the header without this field (absent in files of earlier builds). */
  sha256?: string;
  identity: StatsIdentity;
  calls: [chunk: number, calls: number][];
  inputs: {
    name: string;
    K: number;
    chunks: { chunk: number; calls: number; seen: number; min: Blob; max: Blob; extremes: Blob; scores: Blob; reservoir: Blob; grams?: { gramRows: number; rows: number; gram: Blob; sum: Blob }[] }[];
  }[];
}

function checkHost(): void {
  if (endianness() !== 'LE') throw new Error('statistics files are little-endian; this host is big-endian');
}

/** Writes `stats` (made under `identity`) to `path` atomically. */
export function writeStatsFile(path: string, stats: CollectedStats, identity: StatsIdentity): void {
  checkHost();
  const arrays: (Float32Array | Float64Array)[] = [];
  let offset = 0;
  const blob = (a: Float32Array | Float64Array): Blob => {
    const b: Blob = [offset, a.length, a instanceof Float64Array ? 'f64' : 'f32'];
    arrays.push(a);
    offset += Math.ceil(a.byteLength / 8) * 8;
    return b;
  };
  const header: Header = { version: VERSION, identity, calls: [...stats.calls], inputs: [] };
  for (const [value, tensor] of stats.tensors) {
    const grams = new Map((stats.grams?.get(value)?.snapshot() ?? []).map((g) => [g.chunk, g.folds]));
    header.inputs.push({
      name: value.name,
      K: tensor.channels,
      chunks: tensor.snapshot().map((c) => {
        const folds = grams.get(c.chunk);
        return {
          chunk: c.chunk,
          calls: c.calls,
          seen: c.seen,
          min: blob(c.min),
          max: blob(c.max),
          extremes: blob(c.extremes),
          scores: blob(c.scores),
          reservoir: blob(c.reservoir),
          ...(folds ? { grams: folds.map((f) => ({ gramRows: f.gramRows, rows: f.rows, gram: blob(f.gram), sum: blob(f.sum) })) } : {}),
        };
      }),
    });
  }
  // The arrays are in memory: hashing them first lets the header, written before them, carry the checksum.
  const data = (write: (bytes: Uint8Array) => void) => {
    for (const a of arrays) {
      write(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      if (a.byteLength % 8) write(new Uint8Array(8 - (a.byteLength % 8)));
    }
  };
  const hash = createHash('sha256');
  data((bytes) => hash.update(bytes));
  const sha256 = hash.update(JSON.stringify(header)).digest('hex');
  writeTaggedFile(path, MAGIC, { ...header, sha256 }, data);
}

/** The checksum {@link writeStatsFile} records, of `data` (the file's data section) and `header` (without `sha256`). */
function checksum(data: Uint8Array, header: Omit<Header, 'sha256'>): string {
  return createHash('sha256').update(data).update(JSON.stringify(header)).digest('hex');
}

/** What the loading run needs of the file. */
export interface StatsNeeds extends StatsIdentity {
  /** The layer inputs the run observes. */
  inputs: Value[];
  /** The layers reading each input, to name them in errors. */
  readers?: Map<Value, string[]>;
  /** True when the run reconstructs (it needs the Gram matrices). */
  grams: boolean;
}

/**
 * Reads a saved collection for a run with `needs`; errors name the file and what does not
 * match. A run with reservoir 0 (plain min/max) reads only the ranges of any file.
 */
export function readStatsFile(path: string, needs: StatsNeeds): CollectedStats {
  checkHost();
  const fail = (what: string): never => {
    throw new Error(`statistics file ${path}: ${what}`);
  };
  const file = readTaggedFile(path, MAGIC, 'a statistics file', fail);
  const { bytes, start } = file;
  const header = file.header as Header;
  if (header.version !== VERSION) fail(`has version ${String(header.version)}; this build reads version ${VERSION}`);
  if (typeof header.sha256 === 'string') {
    // Hashed where it lies (no copy): readTaggedFile holds the file once already.
    const { sha256, ...rest } = header;
    if (checksum(bytes.subarray(start), rest) !== sha256) fail('is corrupted: its checksum does not match; save it again (save-statistics)');
  }
  const id = header.identity;
  if (id.model !== needs.model) fail('was collected on another model or another layer selection, or with another fold-split (which reorders channels before calibration): the fingerprints of the calibrated model differ; collect again with save-statistics');
  const bySource = id.source !== undefined && needs.source !== undefined;
  if ((bySource ? id.source !== needs.source : id.origin !== needs.origin) || id.samples !== needs.samples) {
    const of = (i: StatsIdentity) => (bySource ? i.source : i.origin);
    fail(`was collected from ${id.samples} sample(s) of ${of(id)}, this run calibrates on ${needs.samples} sample(s) of ${of(needs)}${id.source === undefined && needs.source !== undefined && id.samples === needs.samples ? ' (a file saved by an earlier build records the module as it was typed: give it the same way, or collect again with save-statistics)' : ''}`);
  }
  if (needs.reservoirRows > 0 && id.reservoirRows !== needs.reservoirRows) fail(`keeps ${id.reservoirRows} reservoir rows per input and chunk, this run asks for ${needs.reservoirRows} (option reservoir-rows)`);
  if (needs.grams && id.gramStride === null) fail('has no Gram matrices (it was saved by a run without reconstruction or bias correction); this run needs them');
  if (needs.grams && id.gramStride !== needs.gramStride) fail(`has Gram matrices from one call in ${id.gramStride}, this run asks for one in ${needs.gramStride} (option gram-stride)`);

  const array = ([offset, length, type]: Blob): Float32Array | Float64Array => {
    const size = type === 'f64' ? 8 : 4;
    const at = start + offset;
    if (at + length * size > bytes.length) fail(`is truncated (an array needs bytes up to ${at + length * size}, the file has ${bytes.length})`);
    const copy = bytes.buffer.slice(bytes.byteOffset + at, bytes.byteOffset + at + length * size);
    return type === 'f64' ? new Float64Array(copy) : new Float32Array(copy);
  };
  const f32 = (b: Blob) => array(b) as Float32Array;
  const f64 = (b: Blob) => array(b) as Float64Array;
  const byName = new Map(header.inputs.map((i) => [i.name, i]));
  const tensors = new Map<Value, TensorStats>();
  const grams = needs.grams ? new Map<Value, GramStats>() : undefined;
  for (const value of needs.inputs) {
    const entry = byName.get(value.name);
    if (!entry) return fail(`has no statistics of ${value.name}, an input of a layer this run quantizes`);
    const layers = needs.readers?.get(value);
    const of = `${value.name}${layers?.length ? ` (the input of ${layers.length > 3 ? `${layers.slice(0, 3).join(', ')} and ${layers.length - 3} more` : layers.join(', ')})` : ''}`;
    // A file without a checksum, or saved from a module whose activations overflowed: refused here, naming the layer, not later as a factorization failure.
    const finite = <T extends Float32Array | Float64Array>(a: T, what: string, chunk: number): T => {
      // A plain loop: these arrays add up to the whole file (hundreds of MB).
      for (let at = 0; at < a.length; at++) {
        if (!Number.isFinite(a[at]!)) fail(`holds a non-finite value (${a[at]}) in the ${what} of ${of}, chunk ${chunk}, element ${at}; save it again (save-statistics)`);
      }
      return a;
    };
    // A chunk that saw no rows keeps its ranges' starting ±Infinity (channel-ranges.ts): that is no damage.
    const ranges = (a: Float32Array, what: string, c: { chunk: number; seen: number }): Float32Array => (c.seen > 0 ? finite(a, what, c.chunk) : a);
    const chunks: ChunkSnapshot[] = entry.chunks.map((c) => ({ chunk: c.chunk, calls: c.calls, seen: c.seen, min: ranges(f32(c.min), 'minima', c), max: ranges(f32(c.max), 'maxima', c), extremes: finite(f32(c.extremes), 'extreme rows', c.chunk), scores: f64(c.scores), reservoir: finite(f32(c.reservoir), 'reservoir rows', c.chunk) }));
    tensors.set(value, TensorStats.restore(entry.K, id.reservoirRows, chunks));
    if (grams) {
      const folds = entry.chunks.map((c) => {
        if (c.grams?.length !== 2) fail(`has no Gram matrices of ${value.name} in chunk ${c.chunk}`);
        return { chunk: c.chunk, folds: c.grams!.map((g): ChunkGram => ({ gramRows: g.gramRows, rows: g.rows, gram: finite(f64(g.gram), 'Gram matrix', c.chunk), sum: finite(f64(g.sum), 'row sums', c.chunk) })) as [ChunkGram, ChunkGram] };
      });
      grams.set(value, GramStats.restore(entry.K, folds));
    }
  }
  const calls = new Map(header.calls);
  return { tensors, chunks: [...calls.keys()].sort((a, b) => a - b), calls, samples: id.samples, ...(grams ? { grams } : {}) };
}
