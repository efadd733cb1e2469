/**
 * Where the CLI writes. `run()` takes one so tests can run the CLI in-process and read what
 * it printed; the default writes to the process streams.
 */
import { createLogger, type Logger } from '../passes/log.ts';

/** The CLI's output streams. */
export interface CliIO {
  /** Requested output (help, `convert passes`, `--stats`); text includes its newlines. */
  out(text: string): void;
  /** Errors, warnings, progress and the summary; text includes its newlines. */
  err(text: string): void;
  /** True when stderr is a terminal (progress lines then rewrite themselves). */
  readonly tty: boolean;
}

/** Writes to `process.stdout` / `process.stderr`. */
export function processIO(): CliIO {
  return {
    out: (t) => void process.stdout.write(t),
    err: (t) => void process.stderr.write(t),
    tty: Boolean(process.stderr.isTTY),
  };
}

/** Global flags every command understands. */
export interface GlobalFlags {
  quiet?: boolean;
  verbose?: boolean;
  debug?: boolean;
}

/** The logger for a command: stderr, prefixed `convert: `, silent under `--quiet`. */
export function cliLogger(io: CliIO, flags: GlobalFlags): Logger {
  return createLogger({
    write: (line) => io.err(`convert: ${line}\n`),
    writeRaw: (text) => io.err(text),
    quiet: Boolean(flags.quiet),
    verbose: Boolean(flags.verbose || flags.debug),
    tty: io.tty,
  });
}
