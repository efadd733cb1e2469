/**
 * Dense symmetric positive-definite linear algebra in float64, row-major `[n, n]`: the pieces
 * GPTQ needs (METHOD.md "Reconstruction"). Plain loops ordered so the inner loop runs over
 * contiguous memory; no pivoting (the inputs are damped Gram matrices).
 */

/**
 * Lower Cholesky factor `L` of `a` (`a = L·Lᵀ`), a new array with zeros above the diagonal.
 * Throws naming the row when `a` is not positive definite.
 */
export function choleskyLower(a: Float64Array, n: number): Float64Array {
  if (a.length !== n * n) throw new RangeError(`cholesky: ${a.length} values are not ${n}×${n}`);
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      let s = a[ri + j]!;
      for (let p = 0; p < j; p++) s -= l[ri + p]! * l[rj + p]!;
      if (i === j) {
        if (!(s > 0)) throw new RangeError(`cholesky: the matrix is not positive definite (pivot ${s} at row ${i})`);
        l[ri + i] = Math.sqrt(s);
      } else l[ri + j] = s / l[rj + j]!;
    }
  }
  return l;
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
