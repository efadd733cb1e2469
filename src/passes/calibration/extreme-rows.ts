/**
 * The `capacity` rows with the largest magnitude (max |x| over the row) seen so far, kept
 * exactly. Calibration's row sample is stratified: these rows (weight 1 each) plus a uniform
 * reservoir over every other row (weight rows-offered / rows-kept). A uniform sample alone
 * rarely holds the few rows with very large activations (a BOS token, a bright frame), so an
 * error measured on it would call clipping them free; in this stratum they always count.
 * A row pushed out of the top set is handed to `overflow` (the reservoir), so every row ends
 * up in exactly one stratum.
 */
export class ExtremeRows {
  private readonly data: Float32Array;
  private readonly score: Float64Array;
  /** Rows held (≤ capacity). */
  kept = 0;
  /** Index of the held row with the smallest score (valid when full). */
  private minIndex = 0;

  private readonly spare: Float32Array;

  constructor(readonly width: number, readonly capacity: number) {
    this.data = new Float32Array(capacity * width);
    this.score = new Float64Array(capacity);
    this.spare = new Float32Array(width);
  }

  /** The smallest score held once full (a row must beat it to enter); -1 while not full. */
  get threshold(): number {
    return this.kept < this.capacity ? -1 : this.score[this.minIndex]!;
  }

  /**
   * Offers the row `values[offset, offset + width)` whose magnitude is `score`. Returns the
   * row that leaves the stratum — the offered one (`values` itself), an evicted one (a buffer
   * reused by the next call) — with its offset, or undefined when nothing leaves.
   */
  offer(values: Float32Array, offset: number, score: number): { row: Float32Array; offset: number } | undefined {
    const W = this.width;
    if (this.kept < this.capacity) {
      copyRow(values, offset, this.data, this.kept * W, W);
      this.score[this.kept++] = score;
      if (this.kept === this.capacity) this.findMin();
      return undefined;
    }
    const min = this.minIndex;
    if (this.capacity === 0 || score <= this.score[min]!) return { row: values, offset };
    copyRow(this.data, min * W, this.spare, 0, W);
    copyRow(values, offset, this.data, min * W, W);
    this.score[min] = score;
    this.findMin();
    return { row: this.spare, offset: 0 };
  }

  private findMin(): void {
    let min = 0;
    for (let i = 1; i < this.kept; i++) if (this.score[i]! < this.score[min]!) min = i;
    this.minIndex = min;
  }

  /** The magnitudes of the held rows, in the order of {@link rows}. */
  scores(): Float64Array {
    return this.score.subarray(0, this.kept);
  }

  /** A copy of a stratum from its {@link rows} and {@link scores} (a saved collection, stats-file.ts). */
  static restore(width: number, capacity: number, rows: Float32Array, scores: Float64Array): ExtremeRows {
    const e = new ExtremeRows(width, capacity);
    if (rows.length !== scores.length * width || scores.length > capacity) throw new RangeError(`ExtremeRows.restore: ${rows.length} values and ${scores.length} scores for width ${width}, capacity ${capacity}`);
    e.data.set(rows);
    e.score.set(scores);
    e.kept = scores.length;
    if (e.kept === capacity) e.findMin();
    return e;
  }

  /** The held rows, row-major `[kept, width]`. */
  rows(): Float32Array {
    return this.data.subarray(0, this.kept * this.width);
  }
}

function copyRow(from: Float32Array, at: number, to: Float32Array, dest: number, W: number): void {
  for (let c = 0; c < W; c++) to[dest + c] = from[at + c]!;
}
