/**
 * Worker threads that run `planWeights` (outlier detection, min/max quantization and its
 * errors: the CPU-heavy, weight-only part of quantizing a layer) so that a conversion uses
 * every core. Weights travel to a worker and quantized rows back by transfer, not by copy.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type ExternalLocation, grownTo, type ReadBuffer, readExternal } from '../../graph/ir/tensor.ts';
import { type ChannelPermutation, permuteMatrixInPlace } from '../../kernels/permute.ts';
import type { QuantConfig } from './config.ts';
import type { WeightPlan } from './plan.ts';

/** A float32 `[K, N]` weight in a data file: the worker reads it itself (see {@link PlanPool.plan}). */
export interface ExternalWeight {
  /** The tensor's name, for errors. */
  name: string;
  location: ExternalLocation;
  /** fold-split's reordering of the stored rows (axis 0) or columns (axis 1): element i comes from `order[i]`. */
  permutation?: ChannelPermutation;
}

/**
 * Reads a float32 `[K, N]` weight from its data file into `scratch` (grown to the largest
 * weight) and applies fold-split's reordering there: no weight-sized buffer per layer, whose
 * first-touch page faults cost more than the read. The view is valid until the next read into
 * `scratch`.
 */
export function readWeightInto(w: ExternalWeight, K: number, N: number, scratch: ReadBuffer): Float32Array {
  const bytes = readExternal(w.name, w.location, grownTo(scratch, w.location.length));
  if (w.permutation) permuteMatrixInPlace(new Uint32Array(bytes.buffer, 0, K * N), K, N, w.permutation);
  return new Float32Array(bytes.buffer, 0, K * N);
}

/** What a worker is asked: the weight's values, or where to read them. */
export interface PlanRequest {
  id: number;
  w: Float32Array | ExternalWeight;
  K: number;
  N: number;
  config: QuantConfig;
  /** How messages name the weight (`layer <node>: weight <tensor>`): a worker's error reaches the user as it words it. */
  label: string;
}

/** What a worker answers. */
export type PlanReply = { id: number; plan: WeightPlan } | { id: number; error: string };

/** The default number of threads: the cores this process may use. */
export function defaultThreads(): number {
  return availableParallelism();
}

/** The buffers of a plan that can move to the other thread instead of being copied. */
export function planTransfers(plan: WeightPlan): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const b of plan.branches) if (b.wq.buffer instanceof ArrayBuffer && b.wq.byteLength > 0) buffers.add(b.wq.buffer);
  return [...buffers];
}

/**
 * A worker of the compiled module beside this file; when this file is the TypeScript source
 * (tests, benchmarks), a worker that registers tsx first and then imports the source.
 */
function startWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./plan-worker.js', import.meta.url));
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = new URL('./plan-worker.ts', import.meta.url).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(source)}); });`, { eval: true });
}

/** A fixed set of worker threads, each answering plan requests in the order it got them. */
export class PlanPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { resolve: (p: WeightPlan) => void; reject: (e: Error) => void; worker: number }>();
  private readonly load: number[] = [];
  private nextId = 0;
  private failure: Error | undefined;

  constructor(threads: number) {
    for (let i = 0; i < threads; i++) {
      const w = startWorker();
      w.on('message', (m: PlanReply) => this.settle(m));
      w.on('error', (e) => this.fail(e as Error));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`a quantization worker thread exited with code ${code}`));
      });
      this.workers.push(w);
      this.load.push(0);
    }
  }

  /**
   * Plans one weight on the least busy worker; `w` is moved there (unusable here afterwards).
   * A weight in a data file is read by the worker into a buffer it keeps: the reading runs
   * on every worker at once, and no weight-sized buffer is allocated, moved and collected
   * per layer.
   */
  plan(w: Float32Array | ExternalWeight, K: number, N: number, config: QuantConfig, label: string): Promise<WeightPlan> {
    if (this.failure) return Promise.reject(this.failure);
    const worker = this.load.indexOf(Math.min(...this.load));
    const id = this.nextId++;
    this.load[worker]!++;
    const request: PlanRequest = { id, w, K, N, config, label };
    return new Promise<WeightPlan>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker });
      this.workers[worker]!.postMessage(request, w instanceof Float32Array && w.buffer instanceof ArrayBuffer ? [w.buffer] : []);
    });
  }

  /** Stops the workers. */
  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private settle(m: PlanReply): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    this.load[p.worker]!--;
    if ('error' in m) p.reject(new Error(m.error));
    else p.resolve(m.plan);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}
