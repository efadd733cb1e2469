/**
 * ONNX tensor element types (TensorProto.DataType) with the facts the IR needs: a short name
 * for printing and the storage size. Kept here rather than in the protobuf layer so the IR
 * and the passes do not depend on the wire format.
 */

/** ONNX TensorProto.DataType numbers. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
} as const;

/** A TensorProto.DataType number. */
export type DataTypeId = number;

interface DTypeInfo {
  short: string;
  /** Bits per element in raw_data (4 for packed int4). 0 for strings. */
  bits: number;
}

const INFO: Record<number, DTypeInfo> = {
  0: { short: 'undef', bits: 0 },
  1: { short: 'f32', bits: 32 },
  2: { short: 'u8', bits: 8 },
  3: { short: 'i8', bits: 8 },
  4: { short: 'u16', bits: 16 },
  5: { short: 'i16', bits: 16 },
  6: { short: 'i32', bits: 32 },
  7: { short: 'i64', bits: 64 },
  8: { short: 'str', bits: 0 },
  9: { short: 'bool', bits: 8 },
  10: { short: 'f16', bits: 16 },
  11: { short: 'f64', bits: 64 },
  12: { short: 'u32', bits: 32 },
  13: { short: 'u64', bits: 64 },
  14: { short: 'c64', bits: 64 },
  15: { short: 'c128', bits: 128 },
  16: { short: 'bf16', bits: 16 },
  17: { short: 'f8e4m3fn', bits: 8 },
  18: { short: 'f8e4m3fnuz', bits: 8 },
  19: { short: 'f8e5m2', bits: 8 },
  20: { short: 'f8e5m2fnuz', bits: 8 },
  21: { short: 'u4', bits: 4 },
  22: { short: 'i4', bits: 4 },
  23: { short: 'f4e2m1', bits: 4 },
  24: { short: 'f8e8m0', bits: 8 },
};

/** Short printable name of a data type (`f32`, `i8`, …); `dt<N>` for unknown numbers. */
export function dtypeName(dt: DataTypeId): string {
  return INFO[dt]?.short ?? `dt${dt}`;
}

/** Bits one element occupies in raw_data; 0 for strings and unknown types. */
export function dtypeBits(dt: DataTypeId): number {
  return INFO[dt]?.bits ?? 0;
}

/** Bytes of raw_data for `count` elements (4-bit types pack two per byte, rounding up). */
export function rawByteLength(dt: DataTypeId, count: number): number {
  return Math.ceil((dtypeBits(dt) * count) / 8);
}

/** Number of elements of a tensor with the given dims (1 for a scalar). */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}
