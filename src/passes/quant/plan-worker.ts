/** A worker thread of {@link PlanPool}: answers plan requests with `planWeights`. */
import { parentPort } from 'node:worker_threads';
import { planWeights } from './plan.ts';
import type { ReadBuffer } from '../../graph/ir/tensor.ts';
import { type ExternalWeight, type PlanReply, type PlanRequest, planTransfers, readWeightInto } from './plan-pool.ts';

/** The buffer weights are read into, grown to the largest one (planWeights keeps no view of it). */
const scratch: ReadBuffer = { bytes: new Uint8Array(0) };

function weightOf(w: Float32Array | ExternalWeight, K: number, N: number): Float32Array {
  return w instanceof Float32Array ? w : readWeightInto(w, K, N, scratch);
}

parentPort!.on('message', (m: PlanRequest) => {
  let reply: PlanReply;
  try {
    reply = { id: m.id, plan: planWeights(weightOf(m.w, m.K, m.N), m.K, m.N, m.config, m.label) };
  } catch (e) {
    reply = { id: m.id, error: (e as Error).message };
  }
  parentPort!.postMessage(reply, 'plan' in reply ? planTransfers(reply.plan) : []);
});
