import { bfloat16ToFloat32Array, float16ToFloat32Array } from '../../kernels/float16.ts';
import { DataType } from '../../graph/ir/dtype.ts';
import { alignedView, type ReadBuffer, type Tensor } from '../../graph/ir/tensor.ts';
import type { LinearLayer } from './linear-layers.ts';

/** Float32 values of a float32, float16 or bfloat16 tensor. */
export function tensorAsFloat32(t: Tensor): Float32Array {
  if (t.dataType === DataType.FLOAT16) return float16ToFloat32Array(alignedView(t.bytes(), Uint16Array, t.size));
  if (t.dataType === DataType.BFLOAT16) return bfloat16ToFloat32Array(alignedView(t.bytes(), Uint16Array, t.size));
  return t.toFloat32();
}

/**
 * The layer's weight as a row-major float32 `[K, N]` matrix with Gemm's alpha folded in:
 * the form every quantizer and statistic works on, whatever the stored layout.
 */
export function weightMatrix(layer: LinearLayer): Float32Array {
  const src = tensorAsFloat32(layer.weight);
  const { K, N, alpha } = layer;
  const out = new Float32Array(K * N);
  if (layer.transposed) {
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[k * N + n] = src[n * K + k]! * alpha;
  } else if (alpha !== 1) {
    for (let i = 0; i < out.length; i++) out[i] = src[i]! * alpha;
  } else out.set(src);
  return out;
}

/**
 * {@link weightMatrix}'s matrix for reading only: the tensor's own float32 values (no copy)
 * when they are stored `[K, N]` without an alpha to fold in. Never write into it.
 */
export function weightMatrixView(layer: LinearLayer): Float32Array {
  return !layer.transposed && layer.alpha === 1 ? tensorAsFloat32(layer.weight) : weightMatrix(layer);
}

/**
 * {@link weightMatrixView}'s matrix, read into `scratch` when the weight is a float32 `[K, N]`
 * in a data file: a pass that reads many weights one after another and keeps none (fold-split's
 * outlier test) then allocates no weight-sized buffer per layer, whose first-touch page faults
 * cost more than the read on a virtual machine. The view is valid until the next read into
 * `scratch`. Never write into it.
 */
export function weightMatrixReadInto(layer: LinearLayer, scratch: ReadBuffer): Float32Array {
  const t = layer.weight;
  if (!t.external || t.dataType !== DataType.FLOAT || layer.transposed || layer.alpha !== 1) return weightMatrixView(layer);
  return alignedView(t.bytesVia(scratch), Float32Array, layer.K * layer.N);
}

/**
 * max_n |W[k, n]| for every input channel k of {@link weightMatrix}'s matrix (Gemm's alpha
 * included, each product rounded to float32 as that matrix stores it), read in the stored
 * layout: a float32 weight is not copied.
 */
export function weightRowAbsMax(layer: LinearLayer): Float64Array {
  const src = tensorAsFloat32(layer.weight);
  const { K, N } = layer;
  const out = new Float64Array(K);
  for (let i = 0; i < src.length; i++) {
    const k = layer.transposed ? i % K : Math.floor(i / N);
    const a = Math.abs(src[i]!);
    if (a > out[k]!) out[k] = a;
  }
  const alpha = Math.abs(layer.alpha);
  // Rounding is monotone and odd, so the rounded product of the largest |w| is the largest rounded |w·α|.
  if (alpha !== 1) for (let k = 0; k < K; k++) out[k] = Math.fround(out[k]! * alpha);
  return out;
}

/** The bias as N float32 values (beta folded in), or undefined when the layer has none. */
export function biasVector(layer: LinearLayer): Float32Array | undefined {
  if (!layer.bias) return undefined;
  const b = layer.bias.tensor.toFloat32();
  if (b.length !== layer.N) return undefined;
  return b.map((v) => Math.fround(v * layer.bias!.scale));
}

/** Rows `rows` of a `[K, N]` matrix, as a `[rows.length, N]` matrix (into `out` when given). */
export function takeRows(w: Float32Array, N: number, rows: Int32Array, out: Float32Array = new Float32Array(rows.length * N)): Float32Array {
  rows.forEach((k, i) => out.set(w.subarray(k * N, (k + 1) * N), i * N));
  return out;
}
