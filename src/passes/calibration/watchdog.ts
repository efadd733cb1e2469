/**
 * The last line of calibration supervision: a user's module stuck in a synchronous loop
 * blocks the event loop, so no timer of the main thread can fire. A small worker thread
 * keeps time instead; when a sample outlives its deadline (plus a grace period in which the
 * main thread's own timeout would have fired, had it been free), it asks the main thread,
 * through the inspector protocol, to run {@link fatal}. Inspector messages are dispatched
 * by a V8 interrupt, which runs even inside a busy loop.
 */
import { closeSync, writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { prepareHardExit, realExit } from '../../graph/serde/temp-files.ts';

/** How long after the deadline the worker steps in: the main thread's timer goes first. */
export const WATCHDOG_GRACE_MS = 2000;

const HOOK = Symbol.for('qarvd.calibration.watchdog');

// CommonJS source of the worker: wait for the deadline the main thread posts, then reach in.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const inspector = require('node:inspector');
let timer;
parentPort.on('message', (m) => {
  clearTimeout(timer);
  if (typeof m.delayMs !== 'number') return;
  timer = setTimeout(() => {
    const session = new inspector.Session();
    session.connectToMainThread();
    session.post('Runtime.evaluate', { expression: 'globalThis[Symbol.for("qarvd.calibration.watchdog")]?.()' });
  }, m.delayMs);
});
`;

let worker: Worker | undefined;
let message = '';

/**
 * Ends the process from inside a blocked main thread: removes temporary files, prints the
 * one-line error and exits with 1. Closing stderr first keeps Node from adding "Waiting for
 * the debugger to disconnect..." (the worker's inspector session is still open).
 */
function fatal(): void {
  prepareHardExit();
  try {
    writeSync(2, `convert: error: ${message}\n`);
    closeSync(2);
  } finally {
    realExit(1);
  }
}

/**
 * Arms the watchdog for one module call: unless the returned function is called within
 * `timeoutMs` + {@link WATCHDOG_GRACE_MS}, the process ends with `text` as its error. One call
 * is armed at a time (samples are drawn one after another; arming again replaces the
 * deadline). Without worker threads or the inspector (a stripped-down Node), it does nothing.
 */
export function armWatchdog(timeoutMs: number, text: string): () => void {
  try {
    worker ??= startWorker();
  } catch {
    return () => {};
  }
  message = text;
  (globalThis as Record<symbol, unknown>)[HOOK] = fatal;
  worker.postMessage({ delayMs: timeoutMs + WATCHDOG_GRACE_MS });
  return () => {
    worker?.postMessage({});
    delete (globalThis as Record<symbol, unknown>)[HOOK];
  };
}

function startWorker(): Worker {
  const w = new Worker(WORKER_SOURCE, { eval: true });
  // The watchdog never keeps a finished conversion alive.
  w.unref();
  w.on('error', () => {
    worker = undefined;
  });
  return w;
}
