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

/** Set once a stream's reader has gone: what is written to it afterwards is dropped. */
const gone = new Set<NodeJS.WriteStream>();
const watched = new Set<NodeJS.WriteStream>();

/**
 * `convert diff … | head -1`: once `head` exits, a write to the pipe fails with EPIPE, which
 * Node emits as an 'error' event on the stream; unhandled, it ended the process with a stack and
 * exit 1 (found by a user trial, on any output past the 64 KiB pipe buffer). As `git diff |
 * head` does, a reader that stops reading is not an error: the output is dropped and the command
 * finishes with its own exit code. It is not ended at once: a conversion with `--stats` still
 * writes its model. stderr is watched too: `convert … --verbose 2>&1 | head -1` closes it under
 * a conversion that logs as it goes (found by review: exit 1, no model written). Installed once
 * per stream and process, however often `run()` is called.
 */
function watch(stream: NodeJS.WriteStream): void {
  if (watched.has(stream)) return;
  watched.add(stream);
  stream.on('error', (e: NodeJS.ErrnoException) => {
    // Any other write error is still fatal, as it was without a listener.
    if (e.code !== 'EPIPE') throw e;
    gone.add(stream);
  });
}

/** Writes `text` to `stream` unless its reader has gone. */
function write(stream: NodeJS.WriteStream, text: string): void {
  if (!gone.has(stream)) stream.write(text);
}

/** Writes to `process.stdout` / `process.stderr`; a closed stream (EPIPE) is not an error. */
export function processIO(): CliIO {
  watch(process.stdout);
  watch(process.stderr);
  return {
    out: (t) => write(process.stdout, t),
    err: (t) => write(process.stderr, t),
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
