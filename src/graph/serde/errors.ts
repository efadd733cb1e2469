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
