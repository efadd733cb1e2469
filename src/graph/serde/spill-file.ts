/**
 * A scratch file for tensors a pass produces from weights it streamed in: each is written
 * once when produced and read back only when the model is saved, so a conversion of a model
 * larger than memory never holds its output either (see docs/scale.md). The file lives in the
 * OS temp folder and is unlinked as soon as it is opened where the OS allows it (POSIX), so
 * nothing is left behind whatever ends the process; elsewhere it is removed at exit. Its
 * descriptor is closed when no tensor refers to it any more.
 */
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeProcessTempDir } from './stale-temps.ts';

const closeOnCollect = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd);
  } catch {
    // Already closed: nothing to release.
  }
});

/** Paths that could not be unlinked while open; removed when the process exits. */
const leftAtExit = new Set<string>();
process.once('exit', () => {
  for (const p of leftAtExit) rmSync(p, { recursive: true, force: true });
});

/** An append-only scratch file of tensor bytes. */
export class SpillFile {
  private readonly fd: number;
  private end = 0;

  constructor() {
    const dir = makeProcessTempDir('qarvd-spill-');
    const path = join(dir, 'tensors.bin');
    this.fd = openSync(path, 'w+');
    try {
      rmSync(path);
      rmSync(dir, { recursive: true });
    } catch {
      leftAtExit.add(dir);
    }
    closeOnCollect.register(this, this.fd);
  }

  /** Bytes written so far. */
  get size(): number {
    return this.end;
  }

  /** Appends `bytes`; returns where they are. */
  write(bytes: Uint8Array): { offset: number; length: number } {
    const offset = this.end;
    let done = 0;
    while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done, bytes.byteLength - done, offset + done);
    this.end += bytes.byteLength;
    return { offset, length: bytes.byteLength };
  }

  /** The bytes at `offset`: a fresh copy, or in the first `length` bytes of `into`. */
  read(offset: number, length: number, into?: Uint8Array): Uint8Array {
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new Error(`spill file: ${length} bytes at ${offset} not found (file is ${this.end} bytes)`);
      done += n;
    }
    return out;
  }
}
