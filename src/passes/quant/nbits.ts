import { quantRange, type QuantType } from '../../kernels/quantize.ts';

/** The blocks com.microsoft.MatMulNBits accepts on the CPU (onnxruntime 1.30). */
const BLOCK_SIZES = [16, 32, 64, 128, 256];

/** A branch weight in MatMulNBits layout. */
export interface NBitsWeight {
  bits: 4 | 8;
  blockSize: number;
  /** `[N, blocks, blockSize·bits/8]` unsigned values, K padded with the zero point. */
  b: Uint8Array;
  bDims: [number, number, number];
  /** `[N·blocks]`: each column's scale repeated over its blocks. */
  scales: Float32Array;
  /** Unsigned zero points, `[N·ceil(blocks·bits/8)]` (4-bit: two per byte, low nibble first). */
  zeroPoints: Uint8Array;
}

/** The block size used for K input channels: the smallest supported block covering K, else 256. */
export function nbitsBlockSize(K: number): number {
  return BLOCK_SIZES.find((s) => s >= K) ?? 256;
}

/**
 * Lays out a per-output-channel quantized `[K, N]` weight for `com.microsoft.MatMulNBits`.
 * MatMulNBits is blockwise along K with blocks of at most 256; per-channel quantization is
 * the special case where every block of a column shares the column's scale and zero point,
 * so the dequantized weight — and the product — are exactly those of the per-channel form.
 * Signed values are shifted to the unsigned grid (int4 + 8, int8 + 128), zero points with them.
 */
export function toMatMulNBits(values: ArrayLike<number>, K: number, N: number, scales: Float32Array, zeroPoints: ArrayLike<number>, type: QuantType): NBitsWeight {
  const { bits, signed } = quantRange(type);
  if (bits !== 4 && bits !== 8) throw new Error(`MatMulNBits takes 4- or 8-bit weights, not ${type}`);
  const shift = signed ? 2 ** (bits - 1) : 0;
  const blockSize = nbitsBlockSize(K);
  const blocks = Math.ceil(K / blockSize);
  const blob = (blockSize * bits) / 8;
  const b = new Uint8Array(N * blocks * blob);
  const scaleOut = new Float32Array(N * blocks);
  const zpPerColumn = Math.ceil((blocks * bits) / 8);
  const zp = new Uint8Array(N * zpPerColumn);
  for (let n = 0; n < N; n++) {
    const z = zeroPoints[n]! + shift;
    for (let k = 0; k < blocks * blockSize; k++) {
      // Padding rows hold the zero point: they dequantize to exactly 0.
      const q = k < K ? values[k * N + n]! + shift : z;
      const at = n * blocks * blob;
      if (bits === 8) b[at + k] = q;
      else b[at + (k >> 1)]! |= q << ((k & 1) * 4);
    }
    for (let blk = 0; blk < blocks; blk++) {
      scaleOut[n * blocks + blk] = scales[n]!;
      if (bits === 8) zp[n * zpPerColumn + blk] = z;
      else zp[n * zpPerColumn + (blk >> 1)]! |= z << ((blk & 1) * 4);
    }
  }
  return { bits, blockSize, b, bDims: [N, blocks, blob], scales: scaleOut, zeroPoints: zp };
}
