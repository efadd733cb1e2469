/**
 * A model folder, or the way `convert` was asked to write into it, that cannot be used: no
 * config.json or onnx/, a variant that exists, a refused `--variant`. The message names the
 * folder or file and says what to do; the CLI prints it as one line.
 */
export class FolderError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FolderError';
  }
}
