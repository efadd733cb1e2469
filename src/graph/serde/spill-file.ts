/**
 * A scratch file for tensors a pass produces (from weights it streamed in, or any, when the
 * file sits beside the output): each is written once when produced and read back, if at all,
 * only when the model is saved, so a conversion of a model larger than memory never holds its
 * output either (see docs/scale.md).
 *
 * Two kinds. An anonymous one lives in the OS temp folder and is unlinked as soon as it is
 * opened where the OS allows it (POSIX), so nothing is left behind whatever ends the process;
 * elsewhere it is removed at exit. One opened from a {@link SpillPlace} lives beside the
 * output's data file under a temporary name, and is laid out as that data file would be: when
 * the tensors it holds are exactly the first ones the save writes, one for one, the save
 * renames it into place instead of copying it (`ExternalDataSink`), which saves a read and a
 * write of every quantized weight. Either way the descriptor is closed when no tensor refers to the file
 * any more.
 */
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tensorStart } from './data-layout.ts';
import { errnoText, isErrno } from './errors.ts';
import { HOST_TAG } from './host-tag.ts';
import { escapeRegExp, makeProcessTempDir, removeStaleTemps } from './stale-temps.ts';
import { tempSuffix, trackTemp, untrackTemp } from './temp-files.ts';

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

/** An append-only scratch file of tensor bytes, each at the offset a data file would give it. */
export class SpillFile {
  private readonly fd: number;
  /** Where each tensor written is, in order: a save taking the file over must place exactly these (a dropped one may hide in another's alignment padding). */
  private readonly written: { offset: number; length: number }[] = [];
  /** The file's temporary name beside an output, while it has one (see {@link SpillPlace}); undefined for an anonymous file. */
  private named: string | undefined;
  private readonly removeNamed: (() => void) | undefined;

  /** @param beside a path in the output's folder to name the file after (`<beside><temp suffix>`); none: an anonymous file in the OS temp folder */
  constructor(beside?: string) {
    if (beside !== undefined) {
      // A name no save uses for its own temporary files ('spill', not 'tmp'), removed with them when stale.
      const path = beside + tempSuffix('spill');
      this.fd = openSync(path, 'wx+');
      this.named = path;
      this.removeNamed = trackTemp(path);
    } else {
      const dir = makeProcessTempDir('qarvd-spill-');
      const path = join(dir, 'tensors.bin');
      this.fd = openSync(path, 'w+');
      try {
        rmSync(path);
        rmSync(dir, { recursive: true });
      } catch {
        leftAtExit.add(dir);
      }
    }
    closeOnCollect.register(this, this.fd);
  }

  /** Bytes written so far: where the last tensor ends. */
  get size(): number {
    const last = this.written.at(-1);
    return last ? last.offset + last.length : 0;
  }

  /** The temporary path of a named file that is still there to be taken over, else undefined. */
  get path(): string | undefined {
    return this.named;
  }

  /** Appends `bytes` where a data file would put them after what is written ({@link tensorStart}); returns where they are. */
  write(bytes: Uint8Array): { offset: number; length: number } {
    const offset = tensorStart(this.size, bytes.byteLength);
    let done = 0;
    try {
      while (done < bytes.byteLength) done += writeSync(this.fd, bytes, done, bytes.byteLength - done, offset + done);
    } catch (e) {
      // A full disk is the likely cause: say which folder needs the room, and how much so far.
      const where = this.named ? `beside the output (${this.named})` : 'in the OS temp folder';
      throw isErrno(e) ? new Error(`cannot write the quantized weights to their scratch file ${where} after ${this.size} bytes: ${errnoText(e)}`, { cause: e }) : e;
    }
    // The gap before `offset`, if any, reads as zeros: the padding a data file has there.
    const at = { offset, length: bytes.byteLength };
    this.written.push(at);
    return at;
  }

  /** The tensors written, in order: where each is. */
  get tensors(): readonly { offset: number; length: number }[] {
    return this.written;
  }

  /** The bytes at `offset`: a fresh copy, or in the first `length` bytes of `into`. */
  read(offset: number, length: number, into?: Uint8Array): Uint8Array {
    const out = into ? into.subarray(0, length) : new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new Error(`spill file: ${length} bytes at ${offset} not found (file is ${this.size} bytes)`);
      done += n;
    }
    return out;
  }

  /**
   * The save took the named file over (renamed it into place): it is no longer a temporary file.
   * Its tensors still read from it through the open descriptor.
   */
  takenOver(): void {
    if (this.named) untrackTemp(this.named);
    this.named = undefined;
  }

  /** Removes a named file that was not taken over (its tensors still read through the open descriptor). */
  remove(): void {
    if (!this.named) return;
    this.named = undefined;
    this.removeNamed?.();
  }
}

/**
 * Where one conversion's quantization keeps its spill file: beside the output's data file, so
 * that the save can take it over (see {@link SpillFile}). The first file asked for is named
 * there; any later one (a second pass, a copy of the model) is anonymous.
 */
export class SpillPlace {
  private file: SpillFile | undefined;
  private given = false;

  /** @param dataPath the data file the save will write (`<output>.data`) */
  constructor(readonly dataPath: string) {}

  /** A new spill file: named beside the data file the first time (anonymous when that folder refuses it), anonymous after. */
  open(): SpillFile {
    if (this.given) return new SpillFile();
    this.given = true;
    // One a killed run left (as large as the quantized weights) goes before this one needs the room.
    removeStaleTemps(dirname(this.dataPath), new RegExp(`^${escapeRegExp(basename(this.dataPath))}\\.(\\d+)\\.\\d+\\.${HOST_TAG}\\.spill$`));
    try {
      this.file = new SpillFile(this.dataPath);
      return this.file;
    } catch {
      // The save will name the output folder's problem (no space, no permission) if it has one.
      return new SpillFile();
    }
  }

  /** Removes the named file unless the save took it over; for the end of a conversion, whatever its outcome. */
  release(): void {
    this.file?.remove();
  }
}
