/**
 * The container of calibration's binary files (the `.recon` side file of a calibration table,
 * a saved collection): an 8-byte tag, a little-endian uint32 header length, a JSON header
 * padded with spaces so that the data starts at a multiple of 8 bytes, then the data. Written
 * atomically (a temporary file renamed into place), so a reader never sees half a file.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { HOST_TAG } from '../../graph/serde/host-tag.ts';
import { escapeRegExp, removeStaleTemps } from '../../graph/serde/stale-temps.ts';

/** Writes `tag`, `header` and the data that `writeData` hands to `write`, atomically. */
export function writeTaggedFile(path: string, tag: string, header: unknown, writeData: (write: (bytes: Uint8Array) => void) => void): void {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((tag.length + 4 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(tag.length + 4);
  head.write(tag, 0, 'latin1');
  head.writeUInt32LE(Buffer.byteLength(json), tag.length);
  const full = resolve(path);
  // A run killed while writing one (a statistics file can take gigabytes) left its temporary file.
  removeStaleTemps(dirname(full), new RegExp(`^${escapeRegExp(basename(full))}\\.(\\d+)\\.${HOST_TAG}\\.tmp$`));
  const tmp = `${full}.${process.pid}.${HOST_TAG}.tmp`;
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
  return { ...parseHead(bytes, bytes.length, tag, kind, fail), bytes };
}

/**
 * {@link readTaggedFile} without the data: the header, where the data starts and the file's
 * size, for a reader that reads the data piece by piece (a file larger than memory).
 */
export function readTaggedHeader(path: string, tag: string, kind: string, fail: (what: string) => never): { header: unknown; start: number; size: number } {
  let fd: number;
  let size: number;
  try {
    fd = openSync(path, 'r');
    size = fstatSync(fd).size;
  } catch (e) {
    return fail(`cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    const lead = Buffer.alloc(Math.min(size, tag.length + 4));
    readSync(fd, lead, 0, lead.length, 0);
    const headerBytes = lead.length === tag.length + 4 && lead.toString('latin1', 0, tag.length) === tag ? lead.readUInt32LE(tag.length) : 0;
    const head = Buffer.alloc(Math.min(size, tag.length + 4 + headerBytes));
    readSync(fd, head, 0, head.length, 0);
    return { ...parseHead(head, size, tag, kind, fail), size };
  } finally {
    closeSync(fd);
  }
}

/** The header of a tagged file whose first bytes are `head` (`size` bytes in all). */
function parseHead(head: Buffer, size: number, tag: string, kind: string, fail: (what: string) => never): { header: unknown; start: number } {
  if (head.length < tag.length + 4 || head.toString('latin1', 0, tag.length) !== tag) fail(`is not ${kind} (no ${tag} header)`);
  const start = tag.length + 4 + head.readUInt32LE(tag.length);
  if (start > size || start > head.length) fail('is truncated in its header');
  try {
    return { header: JSON.parse(head.toString('utf8', tag.length + 4, start)) as unknown, start };
  } catch (e) {
    return fail(`has a malformed header (${(e as Error).message})`);
  }
}
