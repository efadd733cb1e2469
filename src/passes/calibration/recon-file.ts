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
 * The header's `id` is a digest of the file's data and the rest of its header; the table saved
 * with it records the same id (`CalibrationTable.recon`), so that a side file from another save
 * is refused instead of read with the wrong table. Files without an id (earlier builds) are
 * still read. Opening a file with an id recomputes it, reading the data once in pieces (the
 * statistics themselves are read later, as asked): a file changed after it was saved is refused.
 *
 * Version 3 (written only when there are any, i.e. with activation-objective `quantized` or
 * `asymmetric`) adds `moments: [{ layer, form, K, offset }]`: per layer and form the activation
 * error moments `E[eᵀx]` then `E[eᵀe]` (2·K² values). Without moments the file is version 2,
 * as before.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { HOST_TAG } from '../../graph/serde/host-tag.ts';
import { escapeRegExp, removeStaleTemps } from '../../graph/serde/stale-temps.ts';
import { trackTemp } from '../../graph/serde/temp-files.ts';
import { readTaggedHeader, writeTaggedFile } from './tagged-file.ts';
import type { ActivationShift } from './activation-shift.ts';
import type { ReconLookup, ReconStats } from './gram.ts';

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
  /** Digest of the data and the rest of the header (absent in files of earlier builds). */
  id?: string;
  inputs: { layers: string[]; K: number; weight: number; offset: number; folds?: [number, number] }[];
  activation?: { layer: string; form: Form; K: number; offset: number }[];
  moments?: { layer: string; form: Form; K: number; offset: number }[];
}

type Form = 'single' | 'dual';

/** What the side file holds: the statistics are read from it one input at a time, as they are asked for. */
export interface ReconFile {
  /** The file's id, which the table saved with it records (absent in files of earlier builds). */
  id?: string;
  stats: ReconSource;
  activation?: Map<string, ActivationShift>;
}

/**
 * Writes the side file in pieces: each {@link add} appends statistics (grouped.ts hands one
 * group at a time, then releases it) to a spool file beside the target; {@link finish} writes
 * the header, copies the spool after it and renames the result into place. An input already
 * written (one that two groups collected, e.g. the text context every block's cross-attention
 * reads) only gets the new layer names: the same numbers, stored once, so the file is the one a
 * single collection writes.
 */
export class ReconFileWriter {
  private readonly header: Header = { version: VERSION, inputs: [] };
  private offset = 0;
  private readonly byInput = new Map<string, Header['inputs'][number]>();
  private readonly spool: string;
  private fd: number | undefined;
  private readonly digest = createHash('sha256');
  /** The written file's id, set by {@link finish}. */
  id: string | undefined;

  /** Removes the spool and forgets it (registered so that Ctrl-C removes it too). */
  private readonly removeSpool: () => void;

  constructor(readonly path: string) {
    const full = resolve(path);
    // The spools of runs killed before they could remove them (SIGKILL, the OOM killer).
    removeStaleTemps(dirname(full), new RegExp(`^${escapeRegExp(basename(full))}\\.(\\d+)\\.${HOST_TAG}\\.spool$`));
    this.spool = `${full}.${process.pid}.${HOST_TAG}.spool`;
    this.fd = openSync(this.spool, 'w');
    this.removeSpool = trackTemp(this.spool);
  }

  /** Appends statistics by layer name (layers sharing an input share the object, stored once). */
  add(stats: Iterable<[string, ReconStats]>): void {
    const groups = new Map<ReconStats, string[]>();
    for (const [name, s] of stats) groups.set(s, [...(groups.get(s) ?? []), name]);
    for (const [s, layers] of groups) {
      const known = s.input === undefined ? undefined : this.byInput.get(s.input);
      if (known) {
        known.layers.push(...layers);
        continue;
      }
      const entry = { layers, K: s.K, weight: s.weight, offset: this.offset, ...(s.folds ? { folds: [s.folds[0].weight, s.folds[1].weight] as [number, number] } : {}) };
      this.header.inputs.push(entry);
      if (s.input !== undefined) this.byInput.set(s.input, entry);
      for (const part of [s, ...(s.folds ?? [])]) {
        this.write(littleEndian(part.h));
        this.write(littleEndian(part.mean));
      }
    }
  }

  /** Writes the file (atomically) with the activation errors after the statistics, and removes the spool. */
  finish(activation?: Map<string, ActivationShift>): void {
    const vectors: Float64Array[] = [];
    if (activation) {
      this.header.activation = [];
      for (const [layer, shift] of activation) {
        for (const form of ['single', 'dual'] as const) {
          const v = shift[form];
          if (!v) continue;
          this.header.activation.push({ layer, form, K: v.length, offset: this.offset + 8 * vectors.reduce((n, x) => n + x.length, 0) });
          vectors.push(v);
        }
      }
      // Version 3: the activation error moments E[eᵀx] then E[eᵀe] per layer and form, only when there are any.
      const moments: NonNullable<Header['moments']> = [];
      for (const [layer, shift] of activation) {
        for (const form of ['single', 'dual'] as const) {
          const m = shift.moments?.[form];
          if (!m) continue;
          moments.push({ layer, form, K: m.K, offset: this.offset + 8 * vectors.reduce((n, x) => n + x.length, 0) });
          vectors.push(m.cross, m.square);
        }
      }
      if (moments.length) {
        this.header.version = VERSION_MOMENTS;
        this.header.moments = moments;
      }
    }
    closeSync(this.fd!);
    this.fd = undefined;
    const tail = vectors.map(littleEndian);
    for (const b of tail) this.digest.update(b);
    this.id = this.digest.update(JSON.stringify(this.header)).digest('hex').slice(0, 32);
    const header: Header = { ...this.header, id: this.id };
    try {
      writeTaggedFile(this.path, MAGIC, header, (write) => {
        const fd = openSync(this.spool, 'r');
        try {
          const piece = Buffer.alloc(COPY_BYTES);
          for (let n; (n = readSync(fd, piece, 0, COPY_BYTES, null)) > 0; ) write(piece.subarray(0, n));
        } finally {
          closeSync(fd);
        }
        for (const b of tail) write(b);
      });
    } finally {
      this.removeSpool();
    }
  }

  /** Removes the spool without writing the file (a failed run). */
  dispose(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.removeSpool();
  }

  private write(bytes: Buffer): void {
    writeSync(this.fd!, bytes);
    this.digest.update(bytes);
    this.offset += bytes.length;
  }
}

/** Bytes copied from the spool at a time. */
const COPY_BYTES = 64 * 2 ** 20;

/** Writes the statistics (by layer name; shared objects are stored once) atomically. */
export function writeReconFile(path: string, stats: Iterable<[string, ReconStats]>, activation?: Map<string, ActivationShift>): void {
  const writer = new ReconFileWriter(path);
  try {
    writer.add(stats);
    writer.finish(activation);
  } finally {
    writer.dispose();
  }
}

/**
 * The statistics of a side file, read from it one input at a time: the last input read is
 * kept (q, k and v ask for the same one in turn), so a model's reconstruction holds one
 * input's statistics, not the file.
 */
export class ReconSource implements ReconLookup {
  private readonly entryOf = new Map<string, Header['inputs'][number]>();
  private last: { entry: Header['inputs'][number]; stats: ReconStats } | undefined;

  constructor(
    private readonly path: string,
    private readonly header: Header,
    private readonly start: number,
    private readonly size: number,
    private readonly fail: (what: string) => never,
  ) {
    for (const entry of header.inputs) {
      const { K, offset, layers, folds } = entry;
      const end = start + offset + 8 * (K * K + K) * (folds ? 3 : 1);
      if (!(Number.isInteger(K) && K > 0) || end > size) fail(`is truncated (input of layers ${layers.join(', ')} needs bytes up to ${end}, the file has ${size})`);
      for (const name of layers) this.entryOf.set(name, entry);
    }
  }

  /** Whether the file holds `name`'s statistics (from the header: nothing is read). */
  has(name: string): boolean {
    return this.entryOf.has(name);
  }

  get(name: string): ReconStats | undefined {
    const entry = this.entryOf.get(name);
    if (!entry) return undefined;
    if (this.last?.entry !== entry) this.last = { entry, stats: this.read(entry) };
    return this.last.stats;
  }

  /** Every layer's statistics, an input at a time (what a writer copies). */
  *[Symbol.iterator](): IterableIterator<[string, ReconStats]> {
    for (const entry of this.header.inputs) {
      const stats = this.read(entry);
      for (const name of entry.layers) yield [name, stats];
    }
  }

  private read(entry: Header['inputs'][number]): ReconStats {
    const { K, weight, offset, folds } = entry;
    const parts = folds ? 3 : 1;
    const bytes = Buffer.alloc(8 * (K * K + K) * parts);
    const fd = openSync(this.path, 'r');
    try {
      for (let got = 0; got < bytes.length; ) {
        const n = readSync(fd, bytes, got, bytes.length - got, this.start + offset + got);
        if (n === 0) this.fail('is truncated');
        got += n;
      }
    } finally {
      closeSync(fd);
    }
    const values = readFloat64(bytes, 0, (K * K + K) * parts);
    const part = (i: number, w: number): ReconStats => {
      const at = i * (K * K + K);
      return { K, h: values.subarray(at, at + K * K), mean: values.subarray(at + K * K, at + K * K + K), weight: w };
    };
    const stats = part(0, weight);
    if (folds) stats.folds = [part(1, folds[0]), part(2, folds[1])];
    return stats;
  }
}

/** Opens a side file (its header and activation errors are read now, the statistics as asked); errors name the file and what is wrong with it. */
export function readReconFile(path: string): ReconFile {
  const fail = (what: string): never => {
    throw new Error(`reconstruction statistics ${path}: ${what}`);
  };
  const file = readTaggedHeader(path, MAGIC, 'a reconstruction statistics file', fail);
  const { start, size } = file;
  const header = file.header as Header;
  if (!READS.includes(header.version) || !Array.isArray(header.inputs)) fail(`has version ${String(header.version)}; this build reads versions ${READS.join(' and ')}`);
  if (typeof header.id === 'string') {
    const { id: recorded, ...rest } = header;
    if (dataDigest(path, start, size).update(JSON.stringify(rest)).digest('hex').slice(0, 32) !== recorded) fail('is corrupted: its checksum does not match; save it again (save-calibration)');
  }
  const stats = new ReconSource(path, header, start, size, fail);
  const id = typeof header.id === 'string' ? { id: header.id } : {};
  if (!header.activation) return { ...id, stats };
  const activation = new Map<string, ActivationShift>();
  for (const { layer, form, K, offset } of header.activation) {
    const end = start + offset + 8 * K;
    if (!(Number.isInteger(K) && K > 0) || end > size) fail(`is truncated (activation error of layer ${layer} needs bytes up to ${end}, the file has ${size})`);
    activation.set(layer, { ...activation.get(layer), [form]: readFloat64(readBytes(path, start + offset, 8 * K), 0, K) });
  }
  for (const { layer, form, K, offset } of header.moments ?? []) {
    const end = start + offset + 16 * K * K;
    if (!(Number.isInteger(K) && K > 0) || end > size) fail(`is truncated (activation error moments of layer ${layer} need bytes up to ${end}, the file has ${size})`);
    const values = readFloat64(readBytes(path, start + offset, 16 * K * K), 0, 2 * K * K);
    const entry = activation.get(layer) ?? {};
    entry.moments = { ...entry.moments, [form]: { K, cross: values.subarray(0, K * K), square: values.subarray(K * K) } };
    activation.set(layer, entry);
  }
  return { ...id, stats, activation };
}

/** SHA-256 of the file's bytes from `start` to `size`, read {@link COPY_BYTES} at a time (a file of gigabytes is never held whole). */
function dataDigest(path: string, start: number, size: number): Hash {
  const digest = createHash('sha256');
  const piece = Buffer.alloc(Math.min(COPY_BYTES, Math.max(0, size - start)));
  const fd = openSync(path, 'r');
  try {
    for (let at = start, n; at < size && (n = readSync(fd, piece, 0, Math.min(piece.length, size - at), at)) > 0; at += n) digest.update(piece.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return digest;
}

function readBytes(path: string, at: number, n: number): Buffer {
  const bytes = Buffer.alloc(n);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, bytes, 0, n, at);
  } finally {
    closeSync(fd);
  }
  return bytes;
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
