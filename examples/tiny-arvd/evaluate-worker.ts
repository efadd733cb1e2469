/**
 * Child process of `evaluate-parallel.ts`: receives one {@link WorkerJob}, evaluates it with
 * one onnxruntime thread and no latency runs, sends `{ result }` (or `{ error }`) and exits.
 */
import { evaluateModels } from './evaluate.ts';
import type { WorkerJob } from './evaluate-parallel.ts';

process.once('message', (job: WorkerJob) => {
  evaluateModels({ ...job, latencyRuns: 0, threads: 1 })
    .then((result) => process.send!({ result }, () => process.exit(0)))
    .catch((e: unknown) => process.send!({ error: e instanceof Error ? e.message : String(e) }, () => process.exit(1)));
});
