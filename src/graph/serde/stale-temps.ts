/**
 * Temporary files and folders left by a conversion that was killed before it could remove
 * them (SIGKILL, the kernel's out-of-memory killer, a power cut): a save's `.tmp` names beside
 * the output, folder mode's staging folder in `onnx/`, calibration's copy of the model in the
 * OS temp directory (as large as the model). Every such name carries the process id of the run
 * that made it; the next run that makes one of the same kind in the same place removes those
 * whose process is no longer running on this machine.
 *
 * Rules:
 * 1. Only names of the exact form a run makes (the caller's pattern, whose first group is the
 *    process id), carrying this machine's {@link HOST_TAG}, are considered; anything else in
 *    the folder is never touched (another container's or host's files among them: their
 *    process ids mean nothing here).
 * 2. A name whose process is running (or exists under another user: EPERM) is kept.
 * 3. A name carrying this process's own id that this process has not registered
 *    ({@link isLiveTemp}) is stale: process ids repeat, above all in containers, where every
 *    run may be process 1 or 7.
 * 4. Best effort: a name that cannot be removed is left as it was, without an error.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HOST_TAG } from './host-tag.ts';
import { isLiveTemp } from './temp-files.ts';

/** True when a process with this id exists on this machine (rule 2). */
export function processIsRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the entries of `dir` matching `pattern` (first group: the process id) left by a
 * process that is no longer running (rules 1–4); returns the paths removed.
 */
export function removeStaleTemps(dir: string, pattern: RegExp): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(pattern.exec(name)?.[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0) continue;
    const path = join(dir, name);
    if (pid === process.pid ? isLiveTemp(path) : processIsRunning(pid)) continue;
    try {
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      // Rule 4: someone else's, or in use; not this run's business.
    }
  }
  return removed;
}

/** Escapes a file name for use inside a regular expression. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The prefixes of this package's folders in the OS temp directory (`<prefix><host tag>-<pid>-XXXXXX`). */
export type TempDirPrefix = 'qarvd-calib-' | 'qarvd-s1-' | 'qarvd-smooth-' | 'qarvd-spill-' | 'qarvd-split-';

const TEMP_DIR_PATTERN = new RegExp(`^qarvd-(?:calib|s1|smooth|spill|split)-${HOST_TAG}-(\\d+)-[^/]{6}$`);

let swept = false;

/**
 * A new folder `<prefix><host tag>-<pid>-XXXXXX` in the OS temp directory. The first call in a process
 * removes the folders of every prefix left by processes no longer running.
 */
export function makeProcessTempDir(prefix: TempDirPrefix): string {
  if (!swept) {
    swept = true;
    removeStaleTemps(tmpdir(), TEMP_DIR_PATTERN);
  }
  return mkdtempSync(join(tmpdir(), `${prefix}${HOST_TAG}-${process.pid}-`));
}
