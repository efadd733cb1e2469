import { closeSync, openSync, writeSync } from 'node:fs';
import type { ReadBuffer, Tensor } from '../ir/tensor.ts';
import { EXTERNAL_THRESHOLD_BYTES, tensorStart } from './data-layout.ts';
import type { SpillFile } from './spill-file.ts';
import type { TensorSink } from './to-proto.ts';

export { EXTERNAL_THRESHOLD_BYTES };

/** Keeps every tensor inline. */
export const inlineSink: TensorSink = { place: () => undefined };

/** Thrown by a sink taking over a spill file when the model's tensors do not start with the spill file's, in its order. */
export class NotTakenOver extends Error {}

/**
 * Streams tensors of at least {@link EXTERNAL_THRESHOLD_BYTES} into a data file, one at a
 * time, so that saving never holds more than one tensor's bytes (layout: data-layout.ts).
 *
 * Given a spill file to take over (spill-file.ts), the sink writes into that file instead of a
 * new one: the tensors it is given first must be the spill file's, at the offsets they have
 * there, and are not written again; the others are appended after them. Any other order throws
 * {@link NotTakenOver} before a byte is written, and the caller saves with a plain sink.
 */
export class ExternalDataSink implements TensorSink {
  private fd: number | undefined;
  private offset = 0;
  /** How many of the spill file's tensors have been placed (taking one over). */
  private takenOverCount = 0;
  /** Tensors in a file (the input's data file, the spill file) are read into this one buffer, one at a time. */
  private readonly scratch: ReadBuffer = { bytes: new Uint8Array(0) };
  /** Tensors written and bytes written, for the save report. */
  tensors = 0;

  /**
   * @param tmpPath where the bytes are written now (renamed into place by the caller); with
   *   `takeOver`, its path
   * @param location the file name recorded in the model, relative to the model's folder
   * @param takeOver a named spill file whose tensors come first
   */
  constructor(private readonly tmpPath: string, readonly location: string, private readonly takeOver?: SpillFile) {}

  get bytesWritten(): number {
    return this.offset;
  }

  /** Bytes of the spill file taken over as they were (0 without one). */
  get bytesTakenOver(): number {
    return this.takeOver?.size ?? 0;
  }

  place(t: Tensor): Record<string, string>[] | undefined {
    if (t.byteLength < EXTERNAL_THRESHOLD_BYTES) return undefined;
    const start = tensorStart(this.offset, t.byteLength);
    const spill = this.takeOver;
    if (spill && this.takenOverCount < spill.tensors.length) {
      // Still inside the spill file: this tensor must be the next one it holds, where the
      // save would put it. Checking offsets alone is not enough: a tensor the model dropped
      // can sit in the alignment padding before a large one, whose offset is then the same.
      const next = spill.tensors[this.takenOverCount]!;
      const s = t.spilled;
      // (Offsets are unique in the file: the same offset is the same tensor.)
      if (!s || s.file !== spill || s.offset !== next.offset || next.offset !== start) throw new NotTakenOver(`tensor ${t.name} comes where the scratch file holds another`);
      this.takenOverCount++;
      this.offset = start + t.byteLength;
      this.tensors++;
      return locationOf(this.location, start, t.byteLength);
    }
    this.fd ??= openSync(this.tmpPath, spill ? 'r+' : 'w');
    if (start > this.offset) writeSync(this.fd, new Uint8Array(start - this.offset), 0, start - this.offset, this.offset);
    const bytes = t.bytesVia(this.scratch);
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done, bytes.byteLength - done, start + done);
    this.offset = start + bytes.byteLength;
    this.tensors++;
    return locationOf(this.location, start, bytes.byteLength);
  }

  /**
   * For a sink taking over a spill file, once every tensor is placed: the file must hold no
   * tensor after the last one placed (one the model no longer has).
   * @throws NotTakenOver when it does
   */
  checkTakenOver(): void {
    const left = this.takeOver ? this.takeOver.tensors.length - this.takenOverCount : 0;
    if (left > 0) throw new NotTakenOver(`the scratch file holds ${left} tensor(s) after the model's last one`);
  }

  /** Closes the file; true when anything was written (or taken over). */
  close(): boolean {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    return this.offset > 0;
  }
}

function locationOf(location: string, offset: number, length: number): Record<string, string>[] {
  return [
    { key: 'location', value: location },
    { key: 'offset', value: String(offset) },
    { key: 'length', value: String(length) },
  ];
}
