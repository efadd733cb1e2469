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

/** `a⁻¹` of a symmetric positive-definite `a`, through its Cholesky factor: `a⁻¹ = L⁻ᵀ·L⁻¹`. */
export function spdInverse(a: Float64Array, n: number): Float64Array {
  const l = choleskyLower(a, n);
  // X = L⁻¹ (lower), row by row: X[i,:] = (e_i − Σ_{p<i} L[i,p]·X[p,:]) / L[i,i].
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
  // a⁻¹ = Xᵀ·X: a sum of rank-1 updates by the rows of X (lower triangle, then mirrored).
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let r = 0; r <= i; r++) {
      const f = x[ri + r]!;
      if (f === 0) continue;
      const rr = r * n;
      for (let c = 0; c <= r; c++) inv[rr + c] += f * x[ri + c]!;
    }
  }
  for (let r = 0; r < n; r++) for (let c = 0; c < r; c++) inv[c * n + r] = inv[r * n + c]!;
  return inv;
}

/** Upper Cholesky factor `U` of `a` (`a = Uᵀ·U`), row-major. */
export function choleskyUpper(a: Float64Array, n: number): Float64Array {
  const l = choleskyLower(a, n);
  const u = new Float64Array(n * n);
  for (let r = 0; r < n; r++) for (let c = 0; c <= r; c++) u[c * n + r] = l[r * n + c]!;
  return u;
}
