/**
 * Reordering one axis of a row-major 2-D matrix of 32-bit words in place: fold-split's
 * permutation of a weight's rows or columns, applied in the buffer the weight was read into.
 */

/** A reordering of one axis of a 2-D tensor (passes/quant/fold-split.ts). */
export interface ChannelPermutation {
  axis: 0 | 1;
  order: Int32Array;
}

/**
 * Applies `p` to `m`, a row-major `[rows, cols]` float32 matrix as raw 32-bit words, in place
 * (the bits move unchanged), with one row of scratch: a worker reorders a weight in the
 * buffer it read it into, with no second buffer of the weight's size.
 */
export function permuteMatrixInPlace(m: Uint32Array, rows: number, cols: number, p: ChannelPermutation): void {
  const { axis, order } = p;
  if (axis === 1) {
    const row = new Uint32Array(cols);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      row.set(m.subarray(base, base + cols));
      for (let i = 0; i < cols; i++) m[base + i] = row[order[i]!]!;
    }
    return;
  }
  // Rows: follow each cycle of the permutation (new row j = old row order[j]), one row held aside.
  const done = new Uint8Array(rows);
  const held = new Uint32Array(cols);
  for (let start = 0; start < rows; start++) {
    if (done[start] || order[start] === start) continue;
    held.set(m.subarray(start * cols, (start + 1) * cols));
    let j = start;
    for (;;) {
      done[j] = 1;
      const k = order[j]!;
      if (k === start) {
        m.set(held, j * cols);
        break;
      }
      m.copyWithin(j * cols, k * cols, (k + 1) * cols);
      j = k;
    }
  }
}
