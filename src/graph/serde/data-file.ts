/**
 * Where an external data location may point. A model is untrusted input: its `location`
 * strings must not make the loader read (and a later save copy into the output) any file
 * outside the model's folder, whether through `..`, an absolute path or a symlink, nor open
 * a FIFO or device, which could block forever or never end.
 */
import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
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
  if (!isInside(realFolder(src.baseDir), real)) return fail(`location ${location} points outside the model's folder (through a symlink); refusing to read it`);
  const st = statSync(real);
  if (st.isDirectory()) return fail(`location ${location} is a folder, not a data file`);
  if (!st.isFile()) return fail(`location ${location} is not a regular file (a FIFO, socket or device); refusing to read it`);
  return real;
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
