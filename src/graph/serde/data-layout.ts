/**
 * Where tensors go in an external data file. One rule for every writer of such a file (the
 * save, and the spill file a pass writes that the save may take over as the data file), so
 * that the bytes do not depend on which of them wrote a tensor.
 */

/** Tensors at least this large go to the data file when external data is on (as `onnx` does). */
export const EXTERNAL_THRESHOLD_BYTES = 1024;

/**
 * Where a tensor of `byteLength` bytes starts when the file so far ends at `end`: large tensors
 * at a 4 KiB boundary, so that onnxruntime can memory-map them; others at 16 bytes.
 */
export function tensorStart(end: number, byteLength: number): number {
  const align = byteLength >= 1 << 20 ? 4096 : 16;
  return Math.ceil(end / align) * align;
}
