/**
 * The reconstruction statistics beside a calibration table (`<table>.recon`): the α-combined
 * Gram matrix `H`, mean row `μ` and weight of every layer input, and each layer's activation
 * quantizers' mean error per channel (per form: split, unsplit), in float64, so that
 * `load-calibration` reproduces a reconstructed model byte for byte without the calibration
 * module. `H` is K² numbers per input (too big for the JSON table).
 *
 * Layout: the 8 bytes `QARVDREC`, a little-endian uint32 header length, the JSON header
 * `{ version, inputs: [{ layers, K, weight, offset, folds? }], activation: [{ layer, form, K, offset }] }`
 * padded with spaces to a multiple of 8 bytes, then per input `H` (K·K) and `μ` (K) — followed,
 * when `folds` gives the two folds' weights, by each fold's `H` and `μ` (`damp auto` needs
 * them) — and per activation entry K values, as little-endian float64 at `offset` (bytes from
 * the start of the data). Version 1 files (no folds) are still read.
 *
 * Version 3 (written only when there are any, i.e. with activation-objective `quantized` or
 * `asymmetric`) adds `moments: [{ layer, form, K, offset }]`: per layer and form the activation
 * error moments `E[eᵀx]` then `E[eᵀe]` (2·K² values). Without moments the file is version 2,
 * as before.
 */
import { readTaggedFile, writeTaggedFile } from './tagged-file.ts';
import type { ActivationShift } from './activation-shift.ts';
import type { ReconStats } from './gram.ts';

const MAGIC = 'QARVDREC';
const VERSION = 2;
/** The version of a file with activation error moments. */
const VERSION_MOMENTS = 3;
/** Versions this build reads. */
const READS = [1, 2, 3];

/** The side file's path for a calibration table. */
export function reconFileOf(tablePath: string): string {
  return `${tablePath}.recon`;
}

interface Header {
  version: number;
  inputs: { layers: string[]; K: number; weight: number; offset: number; folds?: [number, number] }[];
  activation?: { layer: string; form: Form; K: number; offset: number }[];
  moments?: { layer: string; form: Form; K: number; offset: number }[];
}

type Form = 'single' | 'dual';

/** What the side file holds. */
export interface ReconFile {
  stats: Map<string, ReconStats>;
  activation?: Map<string, ActivationShift>;
}

/** Writes the statistics (by layer name; shared objects are stored once) atomically. */
export function writeReconFile(path: string, stats: Map<string, ReconStats>, activation?: Map<string, ActivationShift>): void {
  const groups = new Map<ReconStats, string[]>();
  for (const [name, s] of stats) groups.set(s, [...(groups.get(s) ?? []), name]);
  const header: Header = { version: VERSION, inputs: [] };
  let offset = 0;
  for (const [s, layers] of groups) {
    header.inputs.push({ layers, K: s.K, weight: s.weight, offset, ...(s.folds ? { folds: [s.folds[0].weight, s.folds[1].weight] as [number, number] } : {}) });
    offset += 8 * (s.K * s.K + s.K) * (s.folds ? 3 : 1);
  }
  const vectors: Float64Array[] = [];
  if (activation) {
    header.activation = [];
    for (const [layer, shift] of activation) {
      for (const form of ['single', 'dual'] as const) {
        const v = shift[form];
        if (!v) continue;
        header.activation.push({ layer, form, K: v.length, offset });
        vectors.push(v);
        offset += 8 * v.length;
      }
    }
    const moments: NonNullable<Header['moments']> = [];
    for (const [layer, shift] of activation) {
      for (const form of ['single', 'dual'] as const) {
        const m = shift.moments?.[form];
        if (!m) continue;
        moments.push({ layer, form, K: m.K, offset });
        vectors.push(m.cross, m.square);
        offset += 16 * m.K * m.K;
      }
    }
    if (moments.length) {
      header.version = VERSION_MOMENTS;
      header.moments = moments;
    }
  }
  writeTaggedFile(path, MAGIC, header, (write) => {
    for (const s of groups.keys()) {
      for (const part of [s, ...(s.folds ?? [])]) {
        write(littleEndian(part.h));
        write(littleEndian(part.mean));
      }
    }
    for (const v of vectors) write(littleEndian(v));
  });
}

/** Reads a side file; errors name the file and what is wrong with it. */
export function readReconFile(path: string): ReconFile {
  const fail = (what: string): never => {
    throw new Error(`reconstruction statistics ${path}: ${what}`);
  };
  const file = readTaggedFile(path, MAGIC, 'a reconstruction statistics file', fail);
  const { bytes, start } = file;
  const header = file.header as Header;
  if (!READS.includes(header.version) || !Array.isArray(header.inputs)) fail(`has version ${String(header.version)}; this build reads versions ${READS.join(' and ')}`);
  const out = new Map<string, ReconStats>();
  for (const entry of header.inputs) {
    const { K, weight, offset, layers, folds } = entry;
    const parts = folds ? 3 : 1;
    const end = start + offset + 8 * (K * K + K) * parts;
    if (!(Number.isInteger(K) && K > 0) || end > bytes.length) fail(`is truncated (input of layers ${layers.join(', ')} needs bytes up to ${end}, the file has ${bytes.length})`);
    const values = readFloat64(bytes, start + offset, (K * K + K) * parts);
    const part = (i: number, w: number): ReconStats => {
      const at = i * (K * K + K);
      return { K, h: values.subarray(at, at + K * K), mean: values.subarray(at + K * K, at + K * K + K), weight: w };
    };
    const stats = part(0, weight);
    if (folds) stats.folds = [part(1, folds[0]), part(2, folds[1])];
    for (const name of layers) out.set(name, stats);
  }
  if (!header.activation) return { stats: out };
  const activation = new Map<string, ActivationShift>();
  for (const { layer, form, K, offset } of header.activation) {
    const end = start + offset + 8 * K;
    if (!(Number.isInteger(K) && K > 0) || end > bytes.length) fail(`is truncated (activation error of layer ${layer} needs bytes up to ${end}, the file has ${bytes.length})`);
    activation.set(layer, { ...activation.get(layer), [form]: readFloat64(bytes, start + offset, K) });
  }
  for (const { layer, form, K, offset } of header.moments ?? []) {
    const end = start + offset + 16 * K * K;
    if (!(Number.isInteger(K) && K > 0) || end > bytes.length) fail(`is truncated (activation error moments of layer ${layer} need bytes up to ${end}, the file has ${bytes.length})`);
    const values = readFloat64(bytes, start + offset, 2 * K * K);
    const entry = activation.get(layer) ?? {};
    entry.moments = { ...entry.moments, [form]: { K, cross: values.subarray(0, K * K), square: values.subarray(K * K) } };
    activation.set(layer, entry);
  }
  return { stats: out, activation };
}

function littleEndian(x: Float64Array): Buffer {
  const b = Buffer.alloc(x.length * 8);
  for (let i = 0; i < x.length; i++) b.writeDoubleLE(x[i]!, i * 8);
  return b;
}

function readFloat64(bytes: Buffer, at: number, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = bytes.readDoubleLE(at + i * 8);
  return out;
}
