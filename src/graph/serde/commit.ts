/**
 * Moving finished temporary files into place as one step: a save writes a model and its data
 * file, folder mode a model and a data file for every graph, and a reader needs all of them
 * from the same run. Renaming them one by one would, on a failure part way (EPERM on a file
 * another user owns in a sticky folder, a full disk for a metadata update), leave new files
 * beside old ones that no longer match them (a model reading offsets past the end of a
 * replaced data file). So every existing final file first gets a second name beside it (a hard
 * link, so that readers still find it until its replacement is renamed over it in one step;
 * moved there where links are refused), then the new files are renamed in; on a failure the
 * old ones are renamed back over whatever was placed.
 */
import { linkSync, lstatSync, renameSync, rmSync } from 'node:fs';
import { errnoText, isErrno } from './errors.ts';
import { tempSuffix } from './temp-files.ts';

/** One file to put in place: `temp` renamed to `final`; without `temp`, `final` is removed. */
export interface FileCommit {
  /** The finished temporary file, or undefined to remove `final` (a stale file of the set). */
  temp?: string;
  final: string;
}

/**
 * A commit that failed: nothing of it is in place. `final` is the file whose move failed;
 * `restored` is false when an old file could not be moved back (`left` says where it is).
 */
export class CommitError extends Error {
  readonly final: string;
  /** Why the move failed, in plain words, without a (temporary) path. */
  readonly why: string;
  /** What became of the previous files. */
  readonly left: string;
  readonly restored: boolean;
  constructor(final: string, why: string, stuck: readonly { final: string; aside: string }[], options?: { cause?: unknown }) {
    const left = stuck.length === 0 ? 'the previous files were left as they were' : `the previous ${stuck.map((a) => `${a.final} is now ${a.aside}`).join(', ')} (it could not be moved back)`;
    super(`${final}: cannot write: ${why}; ${left}`, options);
    this.name = 'CommitError';
    this.final = final;
    this.why = why;
    this.left = left;
    this.restored = stuck.length === 0;
  }
}

/**
 * Puts every `temp` in place of its `final` all or nothing, as far as the file system allows:
 * each existing final (a symbolic link, even a dangling one, counts and is linked or moved
 * itself, not what it points to) gets a second name beside it, then the temporary files are
 * renamed over the finals (a final without `temp` is removed), then the second names are
 * removed. On any failure the old files are renamed back (new files with no old one are
 * removed), and a {@link CommitError} is thrown. A final that is a
 * folder is never moved (nor removed): a file's rename onto it fails, which undoes the commit.
 * Temporary files not yet renamed are the caller's to remove.
 * @throws CommitError naming the final file whose move failed
 */
export function commitFiles(files: readonly FileCommit[]): void {
  const asides: { final: string; aside: string }[] = [];
  const placed: string[] = [];
  const suffix = tempSuffix('old');
  let failed: { final: string; error: unknown } | undefined;
  for (const f of files) {
    if (!occupied(f.final)) continue;
    const aside = f.final + suffix;
    try {
      // A second name (a hard link) keeps the old file readable at its path until the new one
      // replaces it in one rename; where links are refused, the old file is moved aside.
      try {
        linkSync(f.final, aside);
      } catch {
        renameSync(f.final, aside);
      }
      asides.push({ final: f.final, aside });
    } catch (e) {
      failed = { final: f.final, error: e };
      break;
    }
  }
  for (const f of failed ? [] : files) {
    try {
      if (f.temp === undefined) rmSync(f.final, { force: true });
      else {
        renameSync(f.temp, f.final);
        placed.push(f.final);
      }
    } catch (e) {
      failed = { final: f.final, error: e };
      break;
    }
  }
  if (!failed) {
    // The new files are in place: what is left of the old ones is only a name beside them,
    // and one that cannot be removed does not undo the commit. Never a folder (see occupied):
    // a symbolic link is removed itself, not what it points to.
    for (const a of asides) {
      try {
        rmSync(a.aside, { force: true });
      } catch {
        // A stray file beside the output; the output itself is complete.
      }
    }
    return;
  }
  const stuck = rollBack(placed, asides);
  const why = isErrno(failed.error) ? errnoText(failed.error) : (failed.error as Error).message;
  throw new CommitError(failed.final, why, stuck, { cause: failed.error });
}

/** Whether a final path exists as something a file's rename replaces (not a real folder). */
function occupied(path: string): boolean {
  try {
    return !lstatSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Removes the placed files and moves the set-aside ones back; returns those that stayed aside. */
function rollBack(placed: readonly string[], asides: readonly { final: string; aside: string }[]): { final: string; aside: string }[] {
  for (const p of placed) {
    // A placed file with an old one beside it is replaced by that one's rename back, below.
    if (asides.some((a) => a.final === p)) continue;
    try {
      rmSync(p, { force: true });
    } catch {
      // Nothing more can be done; the error says the commit failed.
    }
  }
  const stuck: { final: string; aside: string }[] = [];
  for (const a of asides) {
    try {
      renameSync(a.aside, a.final);
      // A second name of a file never replaced is still a link to the final's own file, and
      // rename does nothing between two links of one file: remove the name left beside it.
      if (occupied(a.aside)) rmSync(a.aside, { force: true });
    } catch {
      stuck.push(a);
    }
  }
  return stuck;
}
