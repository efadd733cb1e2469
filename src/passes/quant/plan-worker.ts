/** A worker thread of {@link PlanPool}: answers plan requests with `planWeights`. */
import { parentPort } from 'node:worker_threads';
import { planWeights } from './plan.ts';
import { type PlanReply, type PlanRequest, planTransfers } from './plan-pool.ts';

parentPort!.on('message', (m: PlanRequest) => {
  let reply: PlanReply;
  try {
    reply = { id: m.id, plan: planWeights(m.w, m.K, m.N, m.config) };
  } catch (e) {
    reply = { id: m.id, error: (e as Error).message };
  }
  parentPort!.postMessage(reply, 'plan' in reply ? planTransfers(reply.plan) : []);
});
