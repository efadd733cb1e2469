/**
 * An error about an input or output file that the CLI reports as one line, naming the file.
 * Anything else that escapes is a bug and keeps its stack trace.
 */
export class ModelFileError extends Error {
  readonly file: string;
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super(`${file}: ${message}`, options);
    this.name = 'ModelFileError';
    this.file = file;
  }
}

/**
 * A Node.js file-system error: the fields of `NodeJS.ErrnoException` used here, declared
 * locally so that the published declarations do not need `@types/node`.
 */
export interface ErrnoError extends Error {
  /** The errno code (`ENOSPC`, `EACCES`, …). */
  code?: string;
  /** The system call that failed (`open`, `write`, …). */
  syscall?: string;
}

/** True for a Node.js file-system error (it carries an errno code such as ENOSPC). */
export function isErrno(e: unknown): e is ErrnoError {
  return e instanceof Error && typeof (e as ErrnoError).code === 'string' && /^E[A-Z]+$/.test((e as ErrnoError).code!);
}

const ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied (is the folder read-only?)',
  EPERM: 'operation not permitted',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EISDIR: 'it is a folder',
  ENOTDIR: 'a part of the path is not a folder',
  ENOENT: 'the folder does not exist',
  EMFILE: 'too many open files',
  EFBIG: 'the file is too large for the file system',
  EIO: 'input/output error',
  ENAMETOOLONG: 'the file name is too long',
};

/** A plain-words reason for a file-system error, without the (possibly temporary) path. */
export function errnoText(e: ErrnoError): string {
  return `${ERRNO_TEXT[e.code!] ?? (e.syscall ? `${e.syscall} failed` : 'failed')} (${e.code})`;
}
