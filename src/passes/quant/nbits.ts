import { quantRange, type QuantType } from '../../kernels/quantize.ts';
import { NBITS_BLOCK_SIZES as BLOCK_SIZES, nbitsBlockSize } from './forms.ts';


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

/**
 * Lays out a quantized `[K, N]` weight for `com.microsoft.MatMulNBits`, blockwise along K.
 * With `quantBlock` the scales are `[blocks, N]` and MatMulNBits uses the same blocks. Without
 * it the scales are per output channel (`[N]`): MatMulNBits's blocks are at most 256, and
 * per-channel quantization is the special case where every block of a column shares the
 * column's scale and zero point, so the dequantized weight — and the product — are exactly
 * those of the per-channel form. Signed values are shifted to the unsigned grid (int4 + 8,
 * int8 + 128), zero points with them.
 */
export function toMatMulNBits(values: ArrayLike<number>, K: number, N: number, scales: Float32Array, zeroPoints: ArrayLike<number>, type: QuantType, quantBlock?: number): NBitsWeight {
  // int7 (reduce-range) values are int8 values.
  const { bits, signed } = quantRange(type === 'int7' ? 'int8' : type);
  if (bits !== 4 && bits !== 8) throw new Error(`MatMulNBits takes 4- or 8-bit weights, not ${type}`);
  if (quantBlock !== undefined && !BLOCK_SIZES.includes(quantBlock)) throw new Error(`MatMulNBits takes blocks of ${BLOCK_SIZES.join(', ')} rows, not ${quantBlock}`);
  const shift = signed ? 2 ** (bits - 1) : 0;
  const blockSize = quantBlock ?? nbitsBlockSize(K);
  const blocks = Math.ceil(K / blockSize);
  // Parameter p of column n, block blk: per channel p = n; blocked p = blk·N + n.
  const param = (blk: number, n: number) => (quantBlock === undefined ? n : blk * N + n);
  const blob = (blockSize * bits) / 8;
  const b = new Uint8Array(N * blocks * blob);
  const scaleOut = new Float32Array(N * blocks);
  const zpPerColumn = Math.ceil((blocks * bits) / 8);
  const zp = new Uint8Array(N * zpPerColumn);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < blocks * blockSize; k++) {
      // Padding rows hold the zero point: they dequantize to exactly 0.
      const q = k < K ? values[k * N + n]! + shift : zeroPoints[param(Math.floor(k / blockSize), n)]! + shift;
      const at = n * blocks * blob;
      if (bits === 8) b[at + k] = q;
      else b[at + (k >> 1)]! |= q << ((k & 1) * 4);
    }
    for (let blk = 0; blk < blocks; blk++) {
      const z = zeroPoints[param(blk, n)]! + shift;
      scaleOut[n * blocks + blk] = scales[param(blk, n)]!;
      if (bits === 8) zp[n * zpPerColumn + blk] = z;
      else zp[n * zpPerColumn + (blk >> 1)]! |= z << ((blk & 1) * 4);
    }
  }
  return { bits, blockSize, b, bDims: [N, blocks, blob], scales: scaleOut, zeroPoints: zp };
}
