/**
 * Reference matrix products, row-major throughout: A is `[M, K]`, B is `[K, N]`, Y is `[M, N]`.
 * They define what the quantized graph must compute (onnxruntime is tested against them); they
 * favour exactness over speed.
 */
import { dequantizePerChannel, dequantizePerTensor, quantizePerChannel, quantizePerTensor, type QuantType } from './quantize.ts';

function checkShapes(aLen: number, bLen: number, M: number, K: number, N: number): void {
  if (aLen !== M * K) throw new RangeError(`matmul: A has ${aLen} values, expected M·K = ${M}·${K}`);
  if (bLen !== K * N) throw new RangeError(`matmul: B has ${bLen} values, expected K·N = ${K}·${N}`);
}

/** Broadcasts a scalar or length-N per-column parameter to a per-column getter array. */
function perColumn(v: number | ArrayLike<number>, N: number, what: string): ArrayLike<number> {
  if (typeof v === 'number') return new Float64Array(N).fill(v);
  if (v.length === 1) return new Float64Array(N).fill(v[0]);
  if (v.length !== N) throw new RangeError(`matmul: ${what} has ${v.length} values, expected 1 or N = ${N}`);
  return v;
}

/** Float GEMM `A·B`, accumulated in float64 and rounded once to float32. */
export function matmul(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float32Array {
  checkShapes(a.length, b.length, M, K, N);
  const out = new Float32Array(M * N);
  const acc = new Float64Array(N);
  for (let i = 0; i < M; i++) {
    acc.fill(0);
    for (let k = 0; k < K; k++) {
      const aik = a[i * K + k];
      if (aik === 0) continue;
      const row = k * N;
      for (let j = 0; j < N; j++) acc[j] += aik * b[row + j];
    }
    out.set(acc, i * N);
  }
  return out;
}

/** Operands of the integer GEMMs. */
export interface IntegerMatmulArgs {
  /** Quantized A `[M, K]` (int8 or uint8 values). */
  a: ArrayLike<number>;
  /** Zero point of A (per tensor). */
  aZeroPoint: number;
  /** Quantized B `[K, N]` (int8 or uint8 values). */
  b: ArrayLike<number>;
  /** Zero point(s) of B: a scalar or one per column. */
  bZeroPoint: number | ArrayLike<number>;
  M: number;
  K: number;
  N: number;
}

/**
 * ONNX MatMulInteger: `Y[i, n] = Σ_k (A[i, k] − za)·(B[k, n] − zb[n])` with int32 accumulation
 * (wrapping like the C++ kernel, though realistic sizes never get near 2^31).
 */
export function matmulInteger(args: IntegerMatmulArgs): Int32Array {
  const { a, aZeroPoint, b, M, K, N } = args;
  checkShapes(a.length, b.length, M, K, N);
  const zb = perColumn(args.bZeroPoint, N, 'bZeroPoint');
  const out = new Int32Array(M * N);
  const acc = new Int32Array(N);
  for (let i = 0; i < M; i++) {
    acc.fill(0);
    for (let k = 0; k < K; k++) {
      const da = a[i * K + k] - aZeroPoint;
      if (da === 0) continue;
      const row = k * N;
      // Int32Array stores wrap modulo 2^32, giving int32 overflow semantics.
      for (let j = 0; j < N; j++) acc[j] += da * (b[row + j] - zb[j]);
    }
    out.set(acc, i * N);
  }
  return out;
}

/** Operands of {@link matmulIntegerToFloat}. */
export interface IntegerToFloatArgs extends IntegerMatmulArgs {
  /** Scale of A (per tensor). */
  aScale: number;
  /** Scale(s) of B: a scalar or one per column. */
  bScale: number | ArrayLike<number>;
  /** Optional bias `[N]`, added after rescaling. */
  bias?: Float32Array;
}

/**
 * com.microsoft.MatMulIntegerToFloat: the int32 MatMulInteger result converted to float and
 * multiplied by the float32 product `a_scale·b_scale[n]`, then plus bias, each step rounded to
 * float32 as onnxruntime's output processor does.
 */
export function matmulIntegerToFloat(args: IntegerToFloatArgs): Float32Array {
  const { M, N, bias } = args;
  if (bias !== undefined && bias.length !== N) throw new RangeError(`matmul: bias has ${bias.length} values, expected N = ${N}`);
  const acc = matmulInteger(args);
  const bs = perColumn(args.bScale, N, 'bScale');
  const multiplier = new Float32Array(N);
  for (let j = 0; j < N; j++) multiplier[j] = Math.fround(args.aScale) * Math.fround(bs[j]);
  const out = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      const y = Math.fround(Math.fround(acc[i * N + j]) * multiplier[j]);
      out[i * N + j] = bias === undefined ? y : y + bias[j];
    }
  }
  return out;
}

/** Per-tensor activation quantizer of {@link fakeQuantMatmul}. */
export interface TensorQuantizer {
  scale: number;
  zeroPoint: number;
  type: QuantType;
}

/** Per-column weight quantizer of {@link fakeQuantMatmul}. */
export interface ChannelQuantizer {
  scales: Float32Array;
  zeroPoints: ArrayLike<number> | null;
  type: QuantType;
}

/**
 * The QDQ form of a quantized linear layer: `DQ(Q(X))·DQ(Q(W))` with X `[M, K]` quantized per
 * tensor and W `[K, N]` per column, multiplied in float (see {@link matmul}).
 */
export function fakeQuantMatmul(
  x: Float32Array, w: Float32Array, M: number, K: number, N: number, act: TensorQuantizer, weight: ChannelQuantizer,
): Float32Array {
  checkShapes(x.length, w.length, M, K, N);
  const xq = dequantizePerTensor(quantizePerTensor(x, act.scale, act.zeroPoint, act.type), act.scale, act.zeroPoint);
  const wq = dequantizePerChannel(quantizePerChannel(w, K, N, weight.scales, weight.zeroPoints, weight.type), K, N, weight.scales, weight.zeroPoints);
  return matmul(xq, wq, M, K, N);
}
