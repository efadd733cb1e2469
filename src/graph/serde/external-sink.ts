import { closeSync, openSync, writeSync } from 'node:fs';
import type { ReadBuffer, Tensor } from '../ir/tensor.ts';
import type { TensorSink } from './to-proto.ts';

/** Tensors at least this large go to the data file when external data is on (as `onnx` does). */
export const EXTERNAL_THRESHOLD_BYTES = 1024;

/** Keeps every tensor inline. */
export const inlineSink: TensorSink = { place: () => undefined };

/**
 * Streams tensors of at least {@link EXTERNAL_THRESHOLD_BYTES} into a data file, one at a
 * time, so that saving never holds more than one tensor's bytes. Large tensors start at a
 * 4 KiB boundary so that onnxruntime can memory-map them.
 */
export class ExternalDataSink implements TensorSink {
  private fd: number | undefined;
  private offset = 0;
  /** Tensors in a file (the input's data file, the spill file) are read into this one buffer, one at a time. */
  private readonly scratch: ReadBuffer = { bytes: new Uint8Array(0) };
  /** Tensors written and bytes written, for the save report. */
  tensors = 0;

  /**
   * @param tmpPath where the bytes are written now (renamed into place by the caller)
   * @param location the file name recorded in the model, relative to the model's folder
   */
  constructor(private readonly tmpPath: string, readonly location: string) {}

  get bytesWritten(): number {
    return this.offset;
  }

  place(t: Tensor): Record<string, string>[] | undefined {
    if (t.byteLength < EXTERNAL_THRESHOLD_BYTES) return undefined;
    this.fd ??= openSync(this.tmpPath, 'w');
    const align = t.byteLength >= 1 << 20 ? 4096 : 16;
    const start = Math.ceil(this.offset / align) * align;
    if (start > this.offset) writeSync(this.fd, new Uint8Array(start - this.offset), 0, start - this.offset, this.offset);
    const bytes = t.bytesVia(this.scratch);
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done, bytes.byteLength - done, start + done);
    this.offset = start + bytes.byteLength;
    this.tensors++;
    return [
      { key: 'location', value: this.location },
      { key: 'offset', value: String(start) },
      { key: 'length', value: String(bytes.byteLength) },
    ];
  }

  /** Closes the file; true when anything was written. */
  close(): boolean {
    if (this.fd === undefined) return false;
    closeSync(this.fd);
    this.fd = undefined;
    return true;
  }
}
