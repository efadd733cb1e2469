/**
 * Dense symmetric positive-definite linear algebra in float64, row-major `[n, n]`: the pieces
 * GPTQ needs (METHOD.md "Reconstruction"). No pivoting (the inputs are damped Gram matrices).
 *
 * The Cholesky factorisation is blocked (right-looking, panels of `block` columns): the
 * diagonal blocks are factored with plain loops, and the bulk — the panel below each diagonal
 * block and the update of the lower trailing matrix — is matrix products through an injectable
 * {@link MatMul64}, so a K = 8960 factorisation (2.4·10¹¹ multiply-adds) runs at the speed
 * of whatever product the caller supplies. Only the lower triangle is updated: n³/6
 * multiply-adds, plus n²·block/2 for the panels.
 */
import { type MatMul64, matmul64 } from './matmul.ts';

/** Options of {@link choleskyLower}. */
export interface CholeskyOptions {
  /** The matrix product of the blocked steps (default: {@link matmul64}, plain JavaScript). */
  matmul?: MatMul64;
  /** Panel width (default 256). Matrices no larger than one panel are factored by plain loops. */
  block?: number;
}

/**
 * Lower Cholesky factor `L` of `a` (`a = L·Lᵀ`), a new array with zeros above the diagonal.
 * Throws naming the row when `a` is not positive definite.
 */
export function choleskyLower(a: Float64Array, n: number, options: CholeskyOptions = {}): Float64Array {
  if (a.length !== n * n) throw new RangeError(`cholesky: ${a.length} values are not ${n}×${n}`);
  const l = Float64Array.from(a);
  choleskyLowerInPlace(l, n, options);
  return l;
}

/**
 * {@link choleskyLower} in place: `a` (its lower triangle is read) becomes `L`, zeros above
 * the diagonal. Needs no second n×n array: the largest temporary is one column strip of the
 * trailing update, `n × block`.
 */
export function choleskyLowerInPlace(a: Float64Array, n: number, options: CholeskyOptions = {}): void {
  if (a.length !== n * n) throw new RangeError(`cholesky: ${a.length} values are not ${n}×${n}`);
  const matmul = options.matmul ?? matmul64;
  const nb = Math.max(1, options.block ?? 256);
  for (let j0 = 0; j0 < n; j0 += nb) {
    const j1 = Math.min(n, j0 + nb);
    const w = j1 - j0;
    factorDiagonalBlock(a, n, j0, w);
    const below = n - j1;
    if (below === 0) break;
    // Panel: L21 = A21·L11⁻ᵀ, one product with the small inverse (a triangular solve in loops
    // would cost n²·block/2 multiply-adds of JavaScript in all).
    const l11 = new Float64Array(w * w);
    for (let r = 0; r < w; r++) for (let c = 0; c <= r; c++) l11[r * w + c] = a[(j0 + r) * n + j0 + c]!;
    const inv = lowerInverse(l11, w);
    const invT = new Float64Array(w * w);
    for (let r = 0; r < w; r++) for (let c = 0; c <= r; c++) invT[c * w + r] = inv[r * w + c]!;
    const a21 = new Float64Array(below * w);
    for (let r = 0; r < below; r++) a21.set(a.subarray((j1 + r) * n + j0, (j1 + r) * n + j1), r * w);
    const l21 = matmul(a21, invT, below, w, w);
    for (let r = 0; r < below; r++) a.set(l21.subarray(r * w, (r + 1) * w), (j1 + r) * n + j0);
    // Trailing update of the lower triangle, one column strip at a time:
    // A[c0:n, c0:c1] −= L21[c0:n]·L21[c0:c1]ᵀ.
    for (let c0 = j1; c0 < n; c0 += nb) {
      const c1 = Math.min(n, c0 + nb);
      const s = c1 - c0;
      const bt = new Float64Array(w * s);
      for (let c = 0; c < s; c++) for (let p = 0; p < w; p++) bt[p * s + c] = l21[(c0 - j1 + c) * w + p]!;
      const rows = n - c0;
      const upd = matmul(l21.subarray((c0 - j1) * w), bt, rows, w, s);
      for (let r = 0; r < rows; r++) {
        const ar = (c0 + r) * n + c0;
        const ur = r * s;
        // In the diagonal block only the lower part is kept (the rest is never read).
        const end = r < s ? r + 1 : s;
        for (let c = 0; c < end; c++) a[ar + c] -= upd[ur + c]!;
      }
    }
  }
  for (let r = 0; r < n; r++) a.fill(0, r * n + r + 1, (r + 1) * n);
}

/** Plain Cholesky of the `w×w` diagonal block at `(j0, j0)` of `a` (row stride `n`), in place. */
function factorDiagonalBlock(a: Float64Array, n: number, j0: number, w: number): void {
  for (let i = j0; i < j0 + w; i++) {
    const ri = i * n;
    for (let j = j0; j <= i; j++) {
      const rj = j * n;
      let s = a[ri + j]!;
      for (let p = j0; p < j; p++) s -= a[ri + p]! * a[rj + p]!;
      if (i === j) {
        if (!(s > 0)) throw new RangeError(`cholesky: the matrix is not positive definite (pivot ${s} at row ${i})`);
        a[ri + i] = Math.sqrt(s);
      } else a[ri + j] = s / a[rj + j]!;
    }
  }
}

/** `L⁻¹` of a lower-triangular `L` (lower), by forward substitution row by row. */
export function lowerInverse(l: Float64Array, n: number): Float64Array {
  // X[i,:] = (e_i − Σ_{p<i} L[i,p]·X[p,:]) / L[i,i]; row p of X is zero beyond column p.
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    x[ri + i] = 1;
    for (let p = 0; p < i; p++) {
      const f = l[ri + p]!;
      if (f === 0) continue;
      const rp = p * n;
      for (let c = 0; c <= p; c++) x[ri + c] -= f * x[rp + c]!;
    }
    const d = l[ri + i]!;
    for (let c = 0; c <= i; c++) x[ri + c] /= d;
  }
  return x;
}

/**
 * The upper Cholesky factor `U` of `a⁻¹` (`a⁻¹ = Uᵀ·U`), without forming `a⁻¹`: with `P` the
 * order reversal, `P·a·P = L·Lᵀ` gives `a⁻¹ = (P·L⁻ᵀ·P)·(P·L⁻¹·P)`, and `P·L⁻¹·P` is upper
 * triangular with a positive diagonal, so it is that factor. One Cholesky factorisation and
 * one triangular inverse: about n³/3 multiply-adds, half of inverting and factoring again.
 */
export function inverseCholeskyUpper(a: Float64Array, n: number): Float64Array {
  if (a.length !== n * n) throw new RangeError(`cholesky: ${a.length} values are not ${n}×${n}`);
  const reversed = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) reversed[r * n + c] = a[(n - 1 - r) * n + (n - 1 - c)]!;
  const m = lowerInverse(choleskyLower(reversed, n), n);
  const u = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = r; c < n; c++) u[r * n + c] = m[(n - 1 - r) * n + (n - 1 - c)]!;
  return u;
}
