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

/** Set once stdout's reader has gone: the rest of the requested output is dropped. */
let stdoutGone = false;
let watchingStdout = false;

/**
 * `convert diff … | head -1`: once `head` exits, a write to the pipe fails with EPIPE, which
 * Node emits as an 'error' event on stdout; unhandled, it ended the process with a stack and
 * exit 1 (found by a user trial, on any output past the 64 KiB pipe buffer). As `git diff |
 * head` does, a reader that stops reading is not an error: the output is dropped and the command
 * finishes with its own exit code. It is not ended at once: a conversion with `--stats` still
 * writes its model. Installed once per process, however often `run()` is called.
 */
function watchStdout(): void {
  if (watchingStdout) return;
  watchingStdout = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    // Any other write error is still fatal, as it was without a listener.
    if (e.code !== 'EPIPE') throw e;
    stdoutGone = true;
  });
}

/** Writes to `process.stdout` / `process.stderr`; a closed stdout (EPIPE) is not an error. */
export function processIO(): CliIO {
  watchStdout();
  return {
    out: (t) => void (stdoutGone || process.stdout.write(t)),
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
