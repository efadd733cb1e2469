/**
 * Atomic JSON output of the passes (reports, calibration tables, S1 curves): written to a
 * temporary file and renamed into place, so a reader (or a run waiting for the file) never
 * sees half of it.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** Writes `data` as indented JSON to `path` through a temporary file and a rename. */
export function writeJsonAtomic(path: string, data: unknown): void {
  const full = resolve(path);
  const tmp = `${full}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
  renameSync(tmp, full);
}
