/**
 * The logger passes and the CLI share. Everything goes to one stream (stderr in the CLI) so
 * that stdout stays free for requested output such as `--stats`; `quiet` silences all of it.
 */

/** Where passes report. */
export interface Logger {
  /** Something the user may want to know (silent under quiet). */
  info(message: string): void;
  /** Something that may be wrong but did not stop the work (silent under quiet). */
  warn(message: string): void;
  /** Progress of a long step: rewritten in place on a terminal, shown only when verbose otherwise. */
  progress(message: string): void;
  /** A logger that prefixes every message with `[prefix] `. */
  child(prefix: string): Logger;
}

/** How to build a {@link Logger}. */
export interface LoggerOptions {
  /** Receives each finished line (without a trailing newline). */
  write: (line: string) => void;
  /** Print nothing (`--quiet`). */
  quiet?: boolean;
  /** Show progress lines also when not on a terminal (`--verbose`). */
  verbose?: boolean;
  /** True when the stream is a terminal: progress lines then overwrite each other. */
  tty?: boolean;
  /** Writes raw text (for in-place progress on a terminal); defaults to `write`. */
  writeRaw?: (text: string) => void;
}

/** Creates a logger writing through `options.write`. */
export function createLogger(options: LoggerOptions): Logger {
  return makeLogger(options, '', { progressShown: false });
}

function makeLogger(options: LoggerOptions, prefix: string, state: { progressShown: boolean }): Logger {
  const { quiet = false, verbose = false, tty = false } = options;
  const raw = options.writeRaw;
  const tag = prefix ? `[${prefix}] ` : '';
  const write = (line: string): void => {
    // A finished line replaces a progress line left on a terminal.
    if (state.progressShown && raw) raw('\r\x1b[K');
    state.progressShown = false;
    options.write(line);
  };
  return {
    info: (m) => {
      if (!quiet) write(tag + m);
    },
    warn: (m) => {
      if (!quiet) write(`${tag}warning: ${m}`);
    },
    progress: (m) => {
      if (quiet) return;
      if (tty && raw) {
        raw(`\r\x1b[K${tag}${m}`);
        state.progressShown = true;
      } else if (verbose) write(tag + m);
    },
    child: (p) => makeLogger(options, prefix ? `${prefix}/${p}` : p, state),
  };
}

/** A logger that drops everything (the default for library use). */
export const silentLogger: Logger = createLogger({ write: () => {}, quiet: true });

/**
 * A logger whose warnings start with `prefix` (a graph's file in a folder of several graphs:
 * "matches no layer of this model" is about one of them).
 */
export function prefixedWarnings(inner: Logger, prefix: string): Logger {
  return {
    info: (m) => inner.info(m),
    warn: (m) => inner.warn(`${prefix}${m}`),
    progress: (m) => inner.progress(m),
    child: (p) => prefixedWarnings(inner.child(p), prefix),
  };
}

/**
 * `inner`, and every warning logged through it or its children also pushed to `into` (with
 * its `[pass] ` prefix), whether or not `inner` prints it: the library's results carry the
 * warnings its default, silent logger drops.
 */
export function recordingWarnings(inner: Logger, into: string[], prefix = ''): Logger {
  const tag = prefix ? `[${prefix}] ` : '';
  return {
    info: (m) => inner.info(m),
    warn: (m) => {
      into.push(tag + m);
      inner.warn(m);
    },
    progress: (m) => inner.progress(m),
    child: (p) => recordingWarnings(inner.child(p), into, prefix ? `${prefix}/${p}` : p),
  };
}
