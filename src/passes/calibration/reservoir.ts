import { seededRandom, type SeededRandom } from '../../kernels/random.ts';

/**
 * A bounded uniform sample of the rows a tensor showed during calibration: reservoir
 * sampling with Li's Algorithm L, which draws how many rows to skip before the next one it
 * keeps, so a row that is not kept costs one comparison (no random draw). The generator is seeded: the kept rows depend
 * only on the seed and the stream. Memory is at most `capacity × width` floats whatever the
 * number of rows offered; storage grows by doubling up to that.
 */
export class RowReservoir {
  private data: Float32Array;
  /** Rows kept (≤ capacity). */
  kept = 0;
  /** Rows offered. */
  seen = 0;
  private readonly random: SeededRandom;
  private w = 1;
  /** Stream index of the next row to keep once the reservoir is full. */
  private next = 0;

  constructor(readonly width: number, readonly capacity: number, seed: number) {
    if (!Number.isInteger(width) || width < 1) throw new RangeError(`RowReservoir: width must be a positive integer, got ${width}`);
    if (!Number.isInteger(capacity) || capacity < 0) throw new RangeError(`RowReservoir: capacity must be a non-negative integer, got ${capacity}`);
    this.data = new Float32Array(Math.min(capacity, 16) * width);
    this.random = seededRandom(seed);
  }

  /** Offers every row of `values` (a row-major `[rows, width]` block). */
  add(values: Float32Array): void {
    const W = this.width;
    if (values.length % W !== 0) throw new Error(`tensor of ${values.length} values does not have ${W} channels on its last axis`);
    for (let at = 0; at < values.length; at += W) this.offer(values, at);
  }

  /** Offers the row `values[offset, offset + width)`. */
  offer(values: Float32Array, offset: number): void {
    const t = this.seen++;
    // The common case, kept small so that it inlines: full, and not the next row to keep
    // (`next` stays 0 while filling, and never falls behind `seen` once full).
    if (t < this.next) return;
    if (this.kept < this.capacity) this.fill(values, offset);
    else if (t === this.next && this.capacity > 0) this.replace(values, offset, t);
  }

  /**
   * Offers `count` consecutive rows of `values` from `offset` on: the same as offering each
   * in turn, but once the reservoir is full the rows before the next one to keep are passed
   * over in one step (calibration offers millions of rows and keeps a few hundred).
   */
  offerRun(values: Float32Array, offset: number, count: number): void {
    const W = this.width;
    let r = 0;
    while (r < count && this.kept < this.capacity) this.offer(values, offset + r++ * W);
    if (this.capacity === 0) {
      this.seen += count - r;
      return;
    }
    while (r < count) {
      // `next` never falls behind `seen` once full: the next kept row is `next − seen` rows on.
      const skip = this.next - this.seen;
      if (skip >= count - r) {
        this.seen += count - r;
        return;
      }
      r += skip;
      this.seen += skip;
      this.offer(values, offset + r++ * W);
    }
  }

  /** The kept rows, row-major `[kept, width]` (a view; do not keep it across offers). */
  /**
   * A reservoir holding `rows` out of `seen` offered, as {@link rows} and {@link seen} of
   * another one reported them (a saved collection, stats-file.ts). It is a read-only copy:
   * its generator state is not restored, so it takes no further rows (offers are ignored).
   */
  static restore(width: number, capacity: number, rows: Float32Array, seen: number): RowReservoir {
    const r = new RowReservoir(width, capacity, 0);
    if (rows.length % width !== 0 || rows.length / width > capacity || rows.length / width > seen) throw new RangeError(`RowReservoir.restore: ${rows.length / width} rows of ${width} for capacity ${capacity} after ${seen} offered`);
    r.data = rows.slice();
    r.kept = rows.length / width;
    r.seen = seen;
    r.next = Infinity;
    return r;
  }

  rows(): Float32Array {
    return this.data.subarray(0, this.kept * this.width);
  }

  private fill(values: Float32Array, offset: number): void {
    const slot = this.kept++;
    this.copy(values, offset, slot);
    if (this.kept === this.capacity) {
      this.w = Math.exp(Math.log(this.uniform()) / this.capacity);
      this.next = this.seen + this.skip();
    }
  }

  private replace(values: Float32Array, offset: number, t: number): void {
    this.copy(values, offset, Math.floor(this.random.next() * this.capacity));
    this.w *= Math.exp(Math.log(this.uniform()) / this.capacity);
    this.next = t + 1 + this.skip();
  }

  private skip(): number {
    const s = Math.floor(Math.log(this.uniform()) / Math.log(1 - this.w));
    return Number.isFinite(s) && s > 0 ? s : 0;
  }

  /** Uniform in (0, 1]. */
  private uniform(): number {
    return 1 - this.random.next();
  }

  private copy(values: Float32Array, offset: number, slot: number): void {
    const W = this.width;
    if ((slot + 1) * W > this.data.length) this.grow();
    const d = this.data;
    const o = slot * W;
    for (let c = 0; c < W; c++) d[o + c] = values[offset + c]!;
  }

  private grow(): void {
    const next = new Float32Array(Math.min(this.capacity, Math.max(1, (this.data.length / this.width) * 2)) * this.width);
    next.set(this.data);
    this.data = next;
  }
}
