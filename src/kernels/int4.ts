/**
 * 4-bit packing: ONNX INT4/UINT4 tensors store two values per byte, element 2i in the low
 * nibble and element 2i+1 in the high nibble. The quantize kernels keep one value per byte
 * (easier to index); pack only when writing a tensor.
 */

/**
 * Packs 4-bit values two per byte, element 2i in the low nibble and 2i+1 in the high nibble
 * (ONNX INT4/UINT4 raw_data layout); an odd tail leaves the last high nibble 0.
 * @throws RangeError if a value is outside [−8, 7] (signed) or [0, 15] (unsigned)
 */
export function packInt4(values: ArrayLike<number>, signed: boolean): Uint8Array {
  const lo = signed ? -8 : 0;
  const hi = signed ? 7 : 15;
  const out = new Uint8Array(Math.ceil(values.length / 2));
  // Integer typed arrays hold integers: only the range needs checking (a loop the JIT keeps tight).
  if (values instanceof Int8Array || values instanceof Uint8Array) return packIntegers(values, out, lo, hi);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`packInt4: value ${v} at ${i} is out of range`);
    out[i >> 1] |= (v & 0xf) << ((i & 1) * 4);
  }
  return out;
}

function packIntegers(values: Int8Array | Uint8Array, out: Uint8Array, lo: number, hi: number): Uint8Array {
  const n = values.length;
  let i = 0;
  // Four values a step as one 32-bit word (little-endian platforms, 4-byte aligned input): the
  // range check and the packing are a few word operations instead of four of each.
  if (LITTLE_ENDIAN && values.byteOffset % 4 === 0) {
    const words = new Uint32Array(values.buffer, values.byteOffset, n >> 2);
    const pairs = new Uint16Array(out.buffer, out.byteOffset, n >> 2);
    // Bytes b + (−lo) mod 256 without carries between bytes; every one must be below 16.
    const shift = ((-lo & 0xff) * 0x01010101) >>> 0;
    for (let j = 0; j < words.length; j++) {
      const v = words[j]!;
      if ((((v & 0x7f7f7f7f) + shift) ^ (v & 0x80808080)) & 0xf0f0f0f0) break;
      pairs[j] = (v & 0xf) | ((v >>> 4) & 0xf0) | ((v >>> 8) & 0xf00) | ((v >>> 12) & 0xf000);
      i = 4 * (j + 1);
    }
  }
  // The rest (and the word with an out-of-range value, which is named below).
  for (; i < n; i += 2) {
    const a = values[i]!;
    const b = i + 1 < n ? values[i + 1]! : 0;
    if (a < lo || a > hi || b < lo || b > hi) {
      const at = a < lo || a > hi ? i : i + 1;
      throw new RangeError(`packInt4: value ${values[at]} at ${at} is out of range`);
    }
    out[i >> 1] = (a & 0xf) | ((b & 0xf) << 4);
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Unpacks `count` 4-bit values packed by {@link packInt4}, sign-extending when `signed`. */
export function unpackInt4(packed: Uint8Array, count: number, signed: boolean): Int8Array | Uint8Array {
  if (packed.length < Math.ceil(count / 2)) throw new RangeError(`unpackInt4: ${packed.length} bytes hold fewer than ${count} values`);
  const out = signed ? new Int8Array(count) : new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const nib = (packed[i >> 1] >> ((i & 1) * 4)) & 0xf;
    out[i] = signed && nib >= 8 ? nib - 16 : nib;
  }
  return out;
}
