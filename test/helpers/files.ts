// File helpers for tests and benchmarks: hashes, scratch folders under test-output/ (gitignored).
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, readSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The repository root (this file is test/helpers/files.ts). */
export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');

/** SHA-256 of a file, read in 8 MiB pieces (works for files over 2 GiB). */
export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(8 << 20);
  const fd = openSync(path, 'r');
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A fresh folder `test-output/<prefix>-XXXXXX`; remove it with {@link removeDir}. */
export function scratchDir(prefix: string): string {
  const root = join(REPO_ROOT, 'test-output');
  mkdirSync(root, { recursive: true });
  return mkdtempSync(join(root, `${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** File names in a folder, sorted (to check that nothing stray was left behind). */
export function listDir(dir: string): string[] {
  return readdirSync(dir).sort();
}
