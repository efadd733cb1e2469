/**
 * The container of calibration's binary files (the `.recon` side file of a calibration table,
 * a saved collection): an 8-byte tag, a little-endian uint32 header length, a JSON header
 * padded with spaces so that the data starts at a multiple of 8 bytes, then the data. Written
 * atomically (a temporary file renamed into place), so a reader never sees half a file.
 */
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';

/** Writes `tag`, `header` and the data that `writeData` hands to `write`, atomically. */
export function writeTaggedFile(path: string, tag: string, header: unknown, writeData: (write: (bytes: Uint8Array) => void) => void): void {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((tag.length + 4 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(tag.length + 4);
  head.write(tag, 0, 'latin1');
  head.writeUInt32LE(Buffer.byteLength(json), tag.length);
  const full = resolve(path);
  const tmp = `${full}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, head);
    writeSync(fd, Buffer.from(json));
    writeData((bytes) => writeSync(fd, bytes));
    closeSync(fd);
    renameSync(tmp, full);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Reads a file written by {@link writeTaggedFile}: its parsed header, its bytes and where the
 * data starts. `fail` throws the caller's error (naming the file); `kind` names what the file
 * should be ("a statistics file").
 */
export function readTaggedFile(path: string, tag: string, kind: string, fail: (what: string) => never): { header: unknown; bytes: Buffer; start: number } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    return fail(`cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (bytes.length < tag.length + 4 || bytes.toString('latin1', 0, tag.length) !== tag) fail(`is not ${kind} (no ${tag} header)`);
  const start = tag.length + 4 + bytes.readUInt32LE(tag.length);
  if (start > bytes.length) fail('is truncated in its header');
  try {
    return { header: JSON.parse(bytes.toString('utf8', tag.length + 4, start)) as unknown, bytes, start };
  } catch (e) {
    return fail(`has a malformed header (${(e as Error).message})`);
  }
}
