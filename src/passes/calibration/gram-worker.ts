/**
 * The Gram products of calibration's collect step in a worker thread (see gram.ts for the
 * arithmetic): each sampled call's `XᵀX` is one onnxruntime `Gemm` and a float64 sum of K²
 * values, about half of the collect step's work on a transformer (the FFN's second layer alone
 * has K = 4·width) and most of its garbage (a K×K product per call). In a worker they run on
 * the second core while the main thread runs the model and keeps the ranges and reservoirs.
 *
 * The sums are the same bits as summing on the main thread: the worker starts each matrix at
 * zero and adds the products one message at a time, in the order they were posted (a
 * MessagePort keeps order; each product finishes before the next message is read), with the
 * same `Gemm` model and session options as {@link GramSessions}.
 *
 * The rows are copied before they are posted (the model's output buffers stay with the
 * caller); at most {@link GramWorkerOptions.maxQueuedBytes} of copies wait in the queue, beyond
 * that {@link GramWorker.add} waits for the worker.
 */
import { createRequire } from 'node:module';
import { onHardExit } from '../../graph/serde/temp-files.ts';
import { Worker } from 'node:worker_threads';
import { gramModelBytes } from './gram.ts';
import { sessionOptions } from './session.ts';

/** Options of {@link GramWorker.open}. */
export interface GramWorkerOptions {
  /** onnxruntime intra-op threads of the worker's sessions (0: onnxruntime's default). */
  threads: number;
  /** Bytes of posted rows the worker may lag behind by (default 256 MiB). */
  maxQueuedBytes?: number;
}

/** The chunk a weighted product is summed under (chunk tags are ≥ 0): one sum per input and fold over all chunks. */
export const WEIGHTED_SUM = -1;

/** One summed Gram matrix: input index (as posted), chunk ({@link WEIGHTED_SUM}: weighted over chunks), fold, `Σ w·XᵀX` and its row count. */
export interface GramSum {
  input: number;
  chunk: number;
  fold: 0 | 1;
  gram: Float64Array;
  gramRows: number;
}

/** The worker: a `Gemm` session per K; each message one call's rows, summed into its matrix in order. */
const WORKER_SOURCE = `
const { workerData, parentPort } = require('node:worker_threads');
const { ortPath, models, options, done } = workerData;
const ort = require(ortPath);
const sessions = new Map();
const sums = new Map();
let failed = false;
const session = (K) => {
  if (!sessions.has(K)) sessions.set(K, ort.InferenceSession.create(models[K], options));
  return sessions.get(K);
};
const add = async ({ input, chunk, fold, K, data, weight }) => {
  const out = await (await session(K)).run({ x: new ort.Tensor('float32', data, [data.length / K, K]) });
  const p = out.g.data;
  const key = input + '|' + chunk + '|' + fold;
  let s = sums.get(key);
  if (!s) sums.set(key, (s = { input, chunk, fold, gram: new Float64Array(K * K), gramRows: 0 }));
  const g = s.gram;
  // Weight 1 (per-chunk sums) multiplies exactly: the same bits as adding p.
  for (let i = 0; i < g.length; i++) g[i] += weight * p[i];
  s.gramRows += data.length / K;
};
const finish = async () => {
  for (const s of sessions.values()) await (await s).release();
  const list = [...sums.values()];
  parentPort.postMessage({ sums: list }, list.map((s) => s.gram.buffer));
};
let queue = Promise.resolve();
let closing = false;
parentPort.on('message', (m) => {
  if (m.close) {
    // Skip what is queued, let the product in flight finish, release the sessions, end.
    closing = true;
    queue = queue.then(async () => {
      for (const s of sessions.values()) await (await s).release().catch(() => {});
      parentPort.close();
    });
    return;
  }
  queue = queue.then(async () => {
    if (failed || closing) return;
    // [2] = 1 while onnxruntime works for this thread; [3] = 1: the process is exiting, start
    // nothing more (GramWorker.waitForExit). Set before the check, so that the main thread
    // either sees this call busy or this call sees the stop.
    Atomics.store(done, 2, 1);
    try {
      if (Atomics.load(done, 3) === 1) return;
      if (m.finish) return await finish();
      if (m.drop) {
        for (const [key, v] of sums) if (m.drop.includes(v.input)) sums.delete(key);
        return;
      }
      await add(m);
      Atomics.add(done, 0, m.data.byteLength);
    } catch (e) {
      failed = true;
      parentPort.postMessage({ error: String((e && e.message) || e) });
      Atomics.store(done, 1, 1);
    } finally {
      Atomics.store(done, 2, 0);
      Atomics.notify(done, 2);
    }
  });
});
`;

/** How long {@link GramWorker.close} waits for the product in flight before it terminates the thread. */
const CLOSE_WAIT_MS = 10_000;
/** How long a hard way out (a signal, the watchdog) waits for the product in flight. */
const EXIT_WAIT_MS = 5_000;

/** Sums of `XᵀX` per (input, chunk, fold) computed in a worker thread (see the module doc). */
export class GramWorker {
  private posted = 0;
  private error: string | undefined;
  private result: ((sums: GramSum[]) => void) | undefined;
  private fail: ((e: Error) => void) | undefined;

  private constructor(
    private readonly thread: Worker,
    /**
     * [0]: bytes of rows the worker has summed (an int32 that wraps past 2 GiB: only differences
     * are read); [1]: 1 once it failed; [2]: 1 while onnxruntime works for it; [3]: 1 once the
     * process is exiting (it starts nothing more).
     */
    private readonly done: Int32Array,
    private readonly maxQueuedBytes: number,
  ) {
    // A signal or the watchdog may end the process while a product is in flight: exiting then
    // aborts the process (SIGABRT, "terminate called after throwing an instance of
    // 'Napi::Error'"), so the way out first waits for it (blocking: it is the way out).
    const unregister = onHardExit(() => this.waitForExit(EXIT_WAIT_MS));
    thread.once('exit', unregister);
    thread.on('message', (m: { sums?: GramSum[]; error?: string }) => {
      if (m.error !== undefined) {
        this.error = m.error;
        this.fail?.(this.failure());
      } else if (m.sums) this.result?.(m.sums);
    });
    thread.on('error', (e) => {
      this.error ??= (e as Error).message;
      this.fail?.(this.failure());
    });
    thread.on('exit', (code) => {
      this.error ??= `the worker exited with code ${code}`;
      this.fail?.(this.failure());
    });
  }

  /** Starts the worker for inputs of the given widths. */
  static open(widths: Iterable<number>, options: GramWorkerOptions): GramWorker {
    const models: Record<number, Uint8Array> = {};
    for (const K of widths) models[K] ??= gramModelBytes(K);
    const done = new Int32Array(new SharedArrayBuffer(16));
    const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    const thread = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath, models, options: sessionOptions(options.threads), done } });
    const worker = new GramWorker(thread, done, options.maxQueuedBytes ?? 256 * 2 ** 20);
    // Unref'd (after the listeners, which ref the port again): a running worker must not keep
    // the event loop alive, or a calibration module whose promise never settles would hang
    // instead of reaching beforeExit (supervise.ts). finish() refs it while it waits for the sums.
    thread.unref();
    return worker;
  }

  private failure(): Error {
    return new Error(`Gram products (calibration's worker thread) failed: ${this.error}`);
  }

  /** Tells the worker to start nothing more and blocks until its onnxruntime call in flight, if any, has returned (at most `maxMs`). */
  private waitForExit(maxMs: number): void {
    Atomics.store(this.done, 3, 1);
    const until = performance.now() + maxMs;
    while (Atomics.load(this.done, 2) === 1) {
      const left = until - performance.now();
      if (left <= 0) return;
      Atomics.wait(this.done, 2, 1, left);
    }
  }

  /** Bytes of rows posted that the worker has not summed yet. */
  get queuedBytes(): number {
    return (this.posted - Atomics.load(this.done, 0)) | 0;
  }

  /**
   * Queues one call's rows (`[rows, K]`, copied) for `Σ XᵀX` of (input, chunk, fold); waits while
   * the worker lags too far behind. `chunk` {@link WEIGHTED_SUM} with a `weight`: `weight·XᵀX`
   * goes into the input's one sum of the fold (α-weighted statistics, gram.ts).
   */
  async add(input: number, chunk: number, fold: 0 | 1, data: Float32Array, K: number, weight = 1): Promise<void> {
    if (this.error !== undefined) throw this.failure();
    const copy = data.slice();
    // Counted before the transfer detaches the copy (its byteLength is 0 after).
    this.posted = (this.posted + copy.byteLength) | 0;
    this.thread.postMessage({ input, chunk, fold, K, data: copy, weight }, [copy.buffer]);
    while (this.queuedBytes > this.maxQueuedBytes) {
      if (Atomics.load(this.done, 1) === 1 || this.error !== undefined) throw this.failure();
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /**
   * Forgets the sums of these inputs (by posted index), after the products already queued for
   * them: the caller no longer wants their statistics (grouped.ts's memory bound).
   */
  drop(inputs: number[]): void {
    if (this.error !== undefined) throw this.failure();
    this.thread.postMessage({ drop: inputs });
  }

  /** Waits for every queued product and returns the sums; the worker ends. */
  async finish(): Promise<GramSum[]> {
    try {
      if (this.error !== undefined) throw this.failure();
      return await new Promise<GramSum[]>((resolve, reject) => {
        this.result = resolve;
        this.fail = reject;
        this.thread.ref();
        this.thread.postMessage({ finish: true });
      });
    } finally {
      await this.thread.terminate();
    }
  }

  /**
   * Ends the worker after a failure elsewhere, without its sums: the products still queued are
   * skipped, the one in flight finishes. Terminating the thread while onnxruntime runs a product
   * in it aborted the whole process (SIGABRT, seen when a calibration module timed out while it
   * kept the worker busy); `terminate` only follows, after at most {@link CLOSE_WAIT_MS}.
   */
  async close(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.thread.once('exit', () => resolve()));
    let timer: NodeJS.Timeout | undefined;
    try {
      this.thread.ref();
      this.thread.postMessage({ close: true });
      await Promise.race([exited, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_WAIT_MS)))]);
    } catch {
      // The thread is gone already (postMessage after exit): nothing to wait for.
    } finally {
      clearTimeout(timer);
      await this.thread.terminate();
    }
  }
}
