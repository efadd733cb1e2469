import type { ChannelRanges } from '../quant/plan.ts';
import { ChannelRangeAccumulator } from './channel-ranges.ts';
import { ExtremeRows } from './extreme-rows.ts';
import { RowReservoir } from './reservoir.ts';

/** Rows of largest magnitude kept exactly per tensor and chunk (besides the reservoir). */
export const EXTREME_ROWS = 16;

/** What calibration keeps for one chunk of one observed tensor. */
export interface ChunkStats {
  /** Exact running per-channel min/max over every row of the chunk. */
  ranges: ChannelRangeAccumulator;
  /** The chunk's rows of largest magnitude, exactly (see extreme-rows.ts). */
  extremes: ExtremeRows;
  /** A bounded uniform sample of the chunk's other rows (for percentiles and the error search). */
  reservoir: RowReservoir;
}

/**
 * Statistics of one observed layer input (`[..., channels]`), kept separately per chunk (the
 * `chunk` tag of the run call; untagged calls are chunk 0). Memory per chunk: two floats per
 * channel plus at most `reservoirRows` + {@link EXTREME_ROWS} rows, whatever the number of
 * samples. With `reservoirRows` 0 only the ranges are kept.
 */
export class TensorStats {
  private readonly byChunk = new Map<number, ChunkStats>();

  /**
   * @param seed base seed of the reservoirs (each chunk's reservoir is seeded from it and the
   *   chunk, so results do not depend on the order in which chunks first appear)
   */
  constructor(readonly channels: number, readonly reservoirRows: number, private readonly seed: number) {}

  /** Folds in one call's tensor: one pass over its values (ranges and row magnitudes), rows to the extreme stratum or the reservoir. */
  add(data: Float32Array, chunk: number): void {
    const s = this.stats(chunk);
    if (this.reservoirRows === 0) {
      s.ranges.add(data);
      return;
    }
    // One pass: per-channel min/max, and each row's magnitude for the extreme stratum. Four
    // rows at a time, so a channel's running min/max is loaded and stored once per four rows
    // (about 1.4× the one-row loop); the values are compared in row order, as one row at a
    // time would, so the ranges are the same bit for bit (signed zeros, NaN never entering).
    const K = this.channels;
    if (data.length % K !== 0) throw new Error(`tensor of ${data.length} values does not have ${K} channels on its last axis`);
    const { min, max } = s.ranges;
    const rows = data.length / K;
    const rows4 = rows - (rows % 4);
    for (let r = 0; r < rows4; r += 4) {
      const a0 = r * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
      let m0 = 0, m1 = 0, m2 = 0, m3 = 0;
      for (let c = 0; c < K; c++) {
        let lo = min[c]!;
        let hi = max[c]!;
        const v0 = data[a0 + c]!, v1 = data[a1 + c]!, v2 = data[a2 + c]!, v3 = data[a3 + c]!;
        if (v0 < lo) lo = v0;
        if (v0 > hi) hi = v0;
        if (v1 < lo) lo = v1;
        if (v1 > hi) hi = v1;
        if (v2 < lo) lo = v2;
        if (v2 > hi) hi = v2;
        if (v3 < lo) lo = v3;
        if (v3 > hi) hi = v3;
        min[c] = lo;
        max[c] = hi;
        // Math.abs and a conditional move: a branch on the sign would mispredict half the time.
        const b0 = Math.abs(v0), b1 = Math.abs(v1), b2 = Math.abs(v2), b3 = Math.abs(v3);
        m0 = b0 > m0 ? b0 : m0;
        m1 = b1 > m1 ? b1 : m1;
        m2 = b2 > m2 ? b2 : m2;
        m3 = b3 > m3 ? b3 : m3;
      }
      // The rows go to their stratum in order, as one row at a time would.
      route(s, data, a0, m0);
      route(s, data, a1, m1);
      route(s, data, a2, m2);
      route(s, data, a3, m3);
    }
    for (let at = rows4 * K; at < data.length; at += K) {
      let m = 0;
      for (let c = 0; c < K; c++) {
        const v = data[at + c]!;
        if (v < min[c]!) min[c] = v;
        if (v > max[c]!) max[c] = v;
        const a = Math.abs(v);
        m = a > m ? a : m;
      }
      route(s, data, at, m);
    }
    s.ranges.samples++;
  }

  private stats(chunk: number): ChunkStats {
    let s = this.byChunk.get(chunk);
    if (!s) {
      s = {
        ranges: new ChannelRangeAccumulator(this.channels),
        extremes: new ExtremeRows(this.channels, this.reservoirRows > 0 ? EXTREME_ROWS : 0),
        reservoir: new RowReservoir(this.channels, this.reservoirRows, mixSeed(this.seed, chunk)),
      };
      this.byChunk.set(chunk, s);
    }
    return s;
  }

  /** Chunks seen, ascending. */
  chunks(): number[] {
    return [...this.byChunk.keys()].sort((a, b) => a - b);
  }

  chunk(c: number): ChunkStats | undefined {
    return this.byChunk.get(c);
  }

  /** Per-channel min/max over all chunks. */
  ranges(): ChannelRanges {
    const min = new Float32Array(this.channels).fill(Infinity);
    const max = new Float32Array(this.channels).fill(-Infinity);
    for (const s of this.byChunk.values()) {
      for (let k = 0; k < this.channels; k++) {
        if (s.ranges.min[k]! < min[k]!) min[k] = s.ranges.min[k]!;
        if (s.ranges.max[k]! > max[k]!) max[k] = s.ranges.max[k]!;
      }
    }
    return { min, max };
  }
}

/** Hands the row at `at` (magnitude `m`) to the extreme stratum, or to the reservoir (with any row it evicts). */
function route(s: ChunkStats, data: Float32Array, at: number, m: number): void {
  const { extremes, reservoir } = s;
  if (m <= extremes.threshold) reservoir.offer(data, at);
  else {
    const out = extremes.offer(data, at, m);
    if (out) reservoir.offer(out.row, out.offset);
  }
}

/** A 32-bit seed from two integers (splitmix-style mixing). */
export function mixSeed(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ Math.imul((b + 0x7f4a7c15) >>> 0, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
