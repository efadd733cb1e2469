import { CliError } from '../cli/errors.ts';

/**
 * A conversion that was asked for wrongly (output path is the input, missing folder, unknown
 * pass, malformed option); the message names the file, pass or option. It extends the CLI's
 * error class so that `convert` prints it as one line, without the "looks like a bug" hint.
 */
export class ConvertError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConvertError';
  }
}
