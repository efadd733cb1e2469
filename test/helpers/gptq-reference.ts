// An independent float64 reference of GPTQ for the kernel tests: the Optimal Brain
// Quantization form (Frantar & Alistarh 2022) that GPTQ's Cholesky formulation is derived
// from. It keeps the explicit inverse of the damped H over the rows not yet quantized and,
// after quantizing row k, updates the remaining rows with `−e_k·H⁻¹[k,:]/H⁻¹[k,k]` and removes
// row k from the inverse by a rank-1 downdate. No Cholesky factor, no batching: it shares no
// arithmetic with src/kernels/gptq.ts beyond the quantizer's rounding rule.
import { quantRange, roundHalfToEven } from '../../src/kernels/quantize.ts';
import type { RowQuantizers } from '../../src/kernels/gptq.ts';

/** Gauss–Jordan inverse of a small dense matrix (float64, partial pivoting). */
export function invert(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    for (const x of [m, inv]) for (let j = 0; j < n; j++) [x[c * n + j], x[p * n + j]] = [x[p * n + j]!, x[c * n + j]!];
    const d = m[c * n + c]!;
    for (let j = 0; j < n; j++) {
      m[c * n + j] /= d;
      inv[c * n + j] /= d;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c]!;
      if (f === 0) continue;
      for (let j = 0; j < n; j++) {
        m[r * n + j] -= f * m[c * n + j]!;
        inv[r * n + j] -= f * inv[c * n + j]!;
      }
    }
  }
  return inv;
}

/** GPTQ by OBQ updates: returns the integer weights `[K, N]` in the original row order. */
export function obqReference(w: Float32Array, h: Float64Array, K: number, N: number, qz: RowQuantizers, damp: number, actOrder: boolean): Int32Array {
  const diag = Array.from({ length: K }, (_, k) => h[k * K + k]!);
  const order = Array.from({ length: K }, (_, k) => k);
  if (actOrder) order.sort((a, b) => diag[b]! - diag[a]! || a - b);
  const mean = diag.reduce((s, d) => s + (d === 0 ? 1 : d), 0) / K;
  const hd = Float64Array.from(h);
  const wk = Float64Array.from(w);
  for (let k = 0; k < K; k++) {
    if (diag[k] === 0) {
      hd[k * K + k] = 1;
      for (let n = 0; n < N; n++) wk[k * N + n] = 0;
    }
    hd[k * K + k] += damp * mean;
  }
  const hinv = invert(hd, K);
  const { qmin, qmax } = quantRange(qz.type);
  const q = new Int32Array(K * N);
  const done = new Uint8Array(K);
  for (const k of order) {
    const d = hinv[k * K + k]!;
    const e = new Float64Array(N);
    for (let n = 0; n < N; n++) {
      const s = qz.scales[qz.group[k]! * N + n]!;
      const z = qz.zeroPoints[qz.group[k]! * N + n]!;
      const v = Math.min(qmax, Math.max(qmin, roundHalfToEven(Math.fround(wk[k * N + n]! / s)) + z));
      q[k * N + n] = v;
      e[n] = (wk[k * N + n]! - Math.fround((v - z) * s)) / d;
    }
    done[k] = 1;
    for (let j = 0; j < K; j++) {
      if (done[j]) continue;
      const f = hinv[k * K + j]!;
      for (let n = 0; n < N; n++) wk[j * N + n] -= f * e[n]!;
    }
    // Remove row and column k from the inverse (the OBS downdate).
    const col = Array.from({ length: K }, (_, r) => hinv[r * K + k]!);
    for (let r = 0; r < K; r++) for (let c = 0; c < K; c++) hinv[r * K + c] -= (col[r]! * col[c]!) / d;
  }
  return q;
}
