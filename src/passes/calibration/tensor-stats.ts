import type { ChannelRanges } from '../quant/plan.ts';
import { ChannelRangeAccumulator } from './channel-ranges.ts';
import { ExtremeRows } from './extreme-rows.ts';
import { RowReservoir } from './reservoir.ts';
import { scanRows } from './simd.ts';

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

/** One chunk of {@link TensorStats} as plain arrays (see {@link TensorStats.snapshot}). */
export interface ChunkSnapshot {
  chunk: number;
  min: Float32Array;
  max: Float32Array;
  /** Calls folded into the ranges. */
  calls: number;
  /** The extreme stratum's rows and their magnitudes. */
  extremes: Float32Array;
  scores: Float64Array;
  /** The reservoir's rows, and how many rows were offered to it. */
  reservoir: Float32Array;
  seen: number;
}

/**
 * Statistics of one observed layer input (`[..., channels]`), kept separately per chunk (the
 * `chunk` tag of the run call; untagged calls are chunk 0). Memory per chunk: two floats per
 * channel plus at most `reservoirRows` + {@link EXTREME_ROWS} rows, whatever the number of
 * samples. With `reservoirRows` 0 only the ranges are kept.
 */
export class TensorStats {
  private readonly byChunk = new Map<number, ChunkStats>();
  /** Scratch: each row's max |x| of the call being added (reused, grown as needed). */
  private rowMax = new Float32Array(0);

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
    // One pass (simd.ts): per-channel min/max, and each row's magnitude for the extreme
    // stratum; then the rows go to their stratum in order.
    const K = this.channels;
    if (data.length % K !== 0) throw new Error(`tensor of ${data.length} values does not have ${K} channels on its last axis`);
    const rows = data.length / K;
    if (this.rowMax.length < rows) this.rowMax = new Float32Array(rows);
    const rowMax = this.rowMax;
    scanRows(data, K, s.ranges.min, s.ranges.max, rowMax);
    const { extremes, reservoir } = s;
    // The extreme stratum's entry threshold changes only when a row enters it. The rows
    // between two that beat it go to the reservoir as one run, in order.
    let threshold = extremes.threshold;
    let run = 0;
    for (let r = 0; r < rows; r++) {
      const m = rowMax[r]!;
      if (m <= threshold) continue;
      if (r > run) reservoir.offerRun(data, run * K, r - run);
      const out = extremes.offer(data, r * K, m);
      if (out) reservoir.offer(out.row, out.offset);
      threshold = extremes.threshold;
      run = r + 1;
    }
    if (rows > run) reservoir.offerRun(data, run * K, rows - run);
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

  /** What a saved collection keeps of each chunk (stats-file.ts): everything the later steps read. */
  snapshot(): ChunkSnapshot[] {
    return this.chunks().map((chunk) => {
      const s = this.byChunk.get(chunk)!;
      return {
        chunk,
        min: s.ranges.min,
        max: s.ranges.max,
        calls: s.ranges.samples,
        extremes: s.extremes.rows(),
        scores: s.extremes.scores(),
        reservoir: s.reservoir.rows(),
        seen: s.reservoir.seen,
      };
    });
  }

  /** Statistics rebuilt from a {@link snapshot}: read-only (the reservoirs take no further rows). */
  static restore(channels: number, reservoirRows: number, chunks: ChunkSnapshot[]): TensorStats {
    const t = new TensorStats(channels, reservoirRows, 0);
    for (const c of chunks) {
      const ranges = new ChannelRangeAccumulator(channels);
      ranges.min.set(c.min);
      ranges.max.set(c.max);
      ranges.samples = c.calls;
      const extremes = ExtremeRows.restore(channels, reservoirRows > 0 ? EXTREME_ROWS : 0, c.extremes, c.scores);
      t.byChunk.set(c.chunk, { ranges, extremes, reservoir: RowReservoir.restore(channels, reservoirRows, c.reservoir, c.seen) });
    }
    return t;
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

/** A 32-bit seed from two integers (splitmix-style mixing). */
export function mixSeed(a: number, b: number): number {
  let h = (Math.imul(a >>> 0, 0x9e3779b1) ^ Math.imul((b + 0x7f4a7c15) >>> 0, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
