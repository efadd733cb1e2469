/**
 * Temporary files and folders that exist only while a conversion runs (a save's `.tmp`
 * names before their rename, calibration's augmented copy). They are registered here so
 * that an interrupted conversion (Ctrl-C, a calibration watchdog) removes them instead of
 * leaving them behind in the user's output folder or the OS temp directory.
 */
import { rmSync } from 'node:fs';
import { HOST_TAG } from './host-tag.ts';
// The real one: a test's fake timers replace the global, and nothing would advance them here.
import { setImmediate } from 'node:timers';

const live = new Set<string>();

/**
 * The suffix of a save's temporary names beside the final file
 * (`out.onnx.1234.1796395860837.3f9a0c2e.tmp`: process id, millisecond, {@link HOST_TAG};
 * `kind` 'old' for a final set aside while a commit replaces it, 'spill' for a pass's spill file
 * beside the output). Unique per process and millisecond, so two runs writing one folder never
 * share a temporary name.
 */
export function tempSuffix(kind: 'tmp' | 'old' | 'spill' = 'tmp'): string {
  return `.${process.pid}.${Date.now()}.${HOST_TAG}.${kind}`;
}

/** Bytes {@link tempSuffix} adds to a file name at most: a name must leave this much of the 255-byte limit. */
export function tempSuffixBytes(): number {
  // Date.now() has 13 digits until the year 2286; the host tag always 8.
  return Buffer.byteLength(tempSuffix());
}

/**
 * `process.exit` as it was when this module loaded: calibration supervision replaces it while
 * a user's module runs, and the ways out here must still really exit.
 */
export const realExit: (code?: number) => never = process.exit.bind(process);

/** Registers a temporary file or folder; returns a function that removes and forgets it. */
export function trackTemp(path: string): () => void {
  live.add(path);
  return () => {
    rmSync(path, { recursive: true, force: true });
    live.delete(path);
  };
}

/** True when `path` is a temporary path this process registered and has not yet removed. */
export function isLiveTemp(path: string): boolean {
  return live.has(path);
}

/** Forgets a temporary path without removing it (it was renamed into place). */
export function untrackTemp(path: string): void {
  live.delete(path);
}

const exitHooks = new Set<() => void>();

/**
 * Registers a synchronous step for the hard ways out (a signal, the calibration watchdog),
 * run before the temporary files are removed and the process exits; returns a function that
 * unregisters it. For work that must not be cut off by the exit (calibration's Gram worker
 * waits there for the onnxruntime call it has in flight: exiting under it aborts the process).
 */
export function onHardExit(hook: () => void): () => void {
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

/** The registered {@link onHardExit} steps (each best effort), then {@link removeTempFiles}. */
export function prepareHardExit(): void {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // On the way out: the other steps and the removal still run.
    }
  }
  removeTempFiles();
}

/** Removes every registered temporary path (best effort: it runs on the way out). */
export function removeTempFiles(): void {
  for (const p of live) {
    try {
      rmSync(p, { recursive: true, force: true });
    } catch {
      // Nothing more can be done on the way out; the rest is still removed.
    }
  }
  live.clear();
}

/** The registered temporary paths (for tests). */
export function liveTempFiles(): string[] {
  return [...live];
}

/**
 * Lets a SIGINT or SIGTERM that arrived while this thread was busy reach its handler (see
 * {@link cleanupOnSignal}): a signal is delivered only from the event loop's poll phase, which
 * synchronous work never reaches. Two turns of `setImmediate`, because from inside an I/O
 * callback the first one runs before the next poll. Await it before committing an output and
 * between long synchronous steps; it costs microseconds.
 */
export function letSignalsRun(): Promise<void> {
  // Without cleanupOnSignal's handlers (the library API) there is nothing to let run.
  if (signalScopes === 0) return Promise.resolve();
  return new Promise((done) => setImmediate(() => setImmediate(done)));
}

/** How many {@link cleanupOnSignal} calls are running. */
let signalScopes = 0;

/** Outputs committed (renamed into place) since the innermost {@link cleanupOnSignal} began. */
let committed: string[] = [];

/**
 * Records that the run's outputs `paths` are in place, complete (after the commit of the
 * output, or of a folder's variants): a signal after that must not say the model was not
 * written, nor fail a run whose work is done.
 */
export function noteCommitted(paths: readonly string[]): void {
  if (signalScopes > 0) committed.push(...paths);
}

/**
 * While `fn` runs, SIGINT and SIGTERM remove the temporary files, print `message` and exit
 * with 130 / 143 as a shell expects — or, once the outputs are committed ({@link noteCommitted}),
 * say they are complete and exit 0; the handlers are removed afterwards.
 */
export async function cleanupOnSignal<T>(write: (text: string) => void, fn: () => Promise<T>): Promise<T> {
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((signal) => {
    const handler = () => {
      prepareHardExit();
      // Between the commit and the end of the run the output is complete: the run succeeded.
      if (committed.length) {
        write(`convert: interrupted (${signal}) after ${committed[0]}${committed.length > 1 ? ` and ${committed.length - 1} more file(s)` : ''} was written, complete; exit 0\n`);
        realExit(0);
      }
      write(`convert: interrupted (${signal}); the model was not written, temporary files removed (files a pass had finished, such as save-statistics or save-sensitivity, are kept)\n`);
      realExit(signal === 'SIGINT' ? 130 : 143);
    };
    process.on(signal, handler);
    return () => process.off(signal, handler);
  });
  signalScopes++;
  committed = [];
  try {
    return await fn();
  } finally {
    signalScopes--;
    for (const off of handlers) off();
  }
}
