/**
 * Rows that repeat in the search's row sample, bit for bit: a cross-attention key input is
 * the same text embedding at every call, a timestep embedding takes a handful of values,
 * the not-yet-generated frames of a video are zeros. The search's products and quantizers
 * work row by row, so they are computed once per distinct row, and the sums over rows read
 * a repeat's values from its first occurrence: the same values, for less work (tiny-arvd:
 * 62% of the rows × layers are distinct).
 */

/** The bitwise-distinct rows of a block, and which of them each row repeats. */
export interface DistinctRows {
  /** Index of the first occurrence of each distinct row, ascending. */
  distinct: Int32Array;
  /** For every row, the index into `distinct` of its first occurrence. */
  distinctOf: Int32Array;
}

/** The bitwise-distinct rows of a row-major `[M, K]` block (-0 and 0 differ; a NaN equals the same NaN). */
export function distinctRows(x: Float32Array, M: number, K: number): DistinctRows {
  const bits = new Uint32Array(x.buffer, x.byteOffset, M * K);
  const byHash = new Map<number, number[]>();
  const distinct: number[] = [];
  const distinctOf = new Int32Array(M);
  for (let i = 0; i < M; i++) {
    const at = i * K;
    // FNV-1a over the row's 32-bit words.
    let h = 0x811c9dc5;
    for (let k = 0; k < K; k++) h = Math.imul(h ^ bits[at + k]!, 0x01000193);
    let bucket = byHash.get(h);
    if (!bucket) byHash.set(h, (bucket = []));
    let found = -1;
    for (const d of bucket) {
      const o = distinct[d]! * K;
      let k = 0;
      while (k < K && bits[o + k] === bits[at + k]) k++;
      if (k === K) {
        found = d;
        break;
      }
    }
    if (found < 0) {
      found = distinct.length;
      distinct.push(i);
      bucket.push(found);
    }
    distinctOf[i] = found;
  }
  return { distinct: Int32Array.from(distinct), distinctOf };
}
