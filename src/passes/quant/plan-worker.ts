/** A worker thread of {@link PlanPool}: answers plan requests with `planWeights`. */
import { parentPort } from 'node:worker_threads';
import { readExternal } from '../../graph/ir/tensor.ts';
import { planWeights } from './plan.ts';
import { permuteMatrixInPlace } from '../../kernels/permute.ts';
import { type ExternalWeight, type PlanReply, type PlanRequest, planTransfers } from './plan-pool.ts';

/** The buffer weights are read into, grown to the largest one (planWeights keeps no view of it). */
let buffer = new Uint8Array(0);

function weightOf(w: Float32Array | ExternalWeight, K: number, N: number): Float32Array {
  if (w instanceof Float32Array) return w;
  if (buffer.byteLength < w.location.length) buffer = new Uint8Array(w.location.length);
  readExternal(w.name, w.location, buffer);
  // fold-split's reordering, in the same buffer.
  if (w.permutation) permuteMatrixInPlace(new Uint32Array(buffer.buffer, 0, K * N), K, N, w.permutation);
  return new Float32Array(buffer.buffer, 0, K * N);
}

parentPort!.on('message', (m: PlanRequest) => {
  let reply: PlanReply;
  try {
    reply = { id: m.id, plan: planWeights(weightOf(m.w, m.K, m.N), m.K, m.N, m.config) };
  } catch (e) {
    reply = { id: m.id, error: (e as Error).message };
  }
  parentPort!.postMessage(reply, 'plan' in reply ? planTransfers(reply.plan) : []);
});
