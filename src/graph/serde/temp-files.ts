/**
 * Temporary files and folders that exist only while a conversion runs (a save's `.tmp`
 * names before their rename, calibration's augmented copy). They are registered here so
 * that an interrupted conversion (Ctrl-C, a calibration watchdog) removes them instead of
 * leaving them behind in the user's output folder or the OS temp directory.
 */
import { rmSync } from 'node:fs';

const live = new Set<string>();

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

/** Forgets a temporary path without removing it (it was renamed into place). */
export function untrackTemp(path: string): void {
  live.delete(path);
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
 * While `fn` runs, SIGINT and SIGTERM remove the temporary files, print `message` and exit
 * with 130 / 143 as a shell expects; the handlers are removed afterwards.
 */
export async function cleanupOnSignal<T>(write: (text: string) => void, fn: () => Promise<T>): Promise<T> {
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((signal) => {
    const handler = () => {
      removeTempFiles();
      write(`convert: interrupted (${signal}); no output written, temporary files removed\n`);
      realExit(signal === 'SIGINT' ? 130 : 143);
    };
    process.on(signal, handler);
    return () => process.off(signal, handler);
  });
  try {
    return await fn();
  } finally {
    for (const off of handlers) off();
  }
}
