/**
 * Where an external data location may point. A model is untrusted input: its `location`
 * strings must not make the loader read (and a later save copy into the output) any file
 * outside the model's folder, whether through `..`, an absolute path or a symlink, nor open
 * a FIFO or device, which could block forever or never end. One exception: in a Hugging Face
 * hub cache snapshot, a symlink into the same repository's `blobs/` ({@link isHubBlobOf}).
 */
import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { ModelFileError } from './errors.ts';

/**
 * Resolves `location` against the model's folder and returns the data file's real path.
 * Throws {@link ModelFileError} naming the tensor and the location when the real path (after
 * every symlink) leaves the folder, or when it is missing or not a regular file.
 */
export function checkedDataFile(src: { file: string; baseDir: string }, tensor: string, location: string): string {
  const fail = (why: string): never => {
    throw new ModelFileError(src.file, `tensor ${tensor}: external data ${why}`);
  };
  let real: string;
  try {
    real = realpathSync(resolve(src.baseDir, location));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' || code === 'ENOTDIR' ? `file ${location} is missing` : `location ${location} cannot be resolved (${code ?? (e as Error).message})`);
  }
  const folder = realFolder(src.baseDir);
  if (!isInside(folder, real) && !isHubBlobOf(folder, real)) {
    return fail(`location ${location} points outside the model's folder (through a symlink); refusing to read it (copy the folder with its links followed, cp -rL, if you trust them)`);
  }
  const st = statSync(real);
  if (st.isDirectory()) return fail(`location ${location} is a folder, not a data file`);
  if (!st.isFile()) return fail(`location ${location} is not a regular file (a FIFO, socket or device); refusing to read it`);
  return real;
}

/**
 * True when `folder` is (inside) a snapshot of a Hugging Face hub cache repository
 * (`<cache>/models--org--name/snapshots/<revision>/…`) and `real` is one of that repository's
 * blobs (`<cache>/models--org--name/blobs/<hash>`): huggingface_hub stores every file of a
 * snapshot as a symlink into `blobs/`, so a model downloaded with it has no other form, and
 * the link stays within what was downloaded as one repository. Both are real paths.
 */
export function isHubBlobOf(folder: string, real: string): boolean {
  for (let dir = folder; dirname(dir) !== dir; dir = dirname(dir)) {
    const snapshots = dirname(dir);
    const repo = dirname(snapshots);
    if (basename(snapshots) !== 'snapshots' || !/^(models|datasets|spaces)--./.test(basename(repo))) continue;
    return dirname(real) === join(repo, 'blobs');
  }
  return false;
}

/**
 * Where `path` really is when a symlink puts it outside `folder` (and not into the folder's
 * hub cache blobs, {@link isHubBlobOf}); undefined when it stays inside. For the files found
 * beside a model (its tokenizer, `config.json`), which are as untrusted as its data locations.
 */
export function linkedOutside(folder: string, path: string): string | undefined {
  const dir = realFolder(folder);
  const real = realpathSync(path);
  return isInside(dir, real) || isHubBlobOf(dir, real) ? undefined : real;
}

/** True when `path` is `folder` itself or below it (both real paths). */
export function isInside(folder: string, path: string): boolean {
  const rel = relative(folder, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The real path of `path`, or `path` resolved when it does not exist (yet). */
export function realFolder(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return resolve(dir);
  }
}
