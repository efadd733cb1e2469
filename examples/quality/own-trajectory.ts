// One-step error on each model's OWN rollout against the usual one on fp32's (docs/reconstruction.md,
// "Does q-arvd's error meet the rollout's drift?"): every 8th call (offset 4) of a rollout is
// replayed on the other model with the same inputs; relative squared error of the video-shaped
// output on the call's chunk frames, per chunk. `node --import tsx examples/quality/own-trajectory.ts a.onnx b.onnx …`
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { rollout, evaluationPrompts } from '../tiny-arvd-l/rollout.ts';
import { seededRandom } from '../../src/kernels/random.ts';
const opts = { intraOpNumThreads: 1 };
const fp32 = await ort.InferenceSession.create(fileURLToPath(new URL('../tiny-arvd-l/model.onnx', import.meta.url)), opts);
const models = process.argv.slice(2);
type Call = { feeds: Record<string, ort.Tensor>; chunk: number; out: ort.Tensor };
async function traj(s: ort.InferenceSession, i: number): Promise<Call[]> {
  const calls: Call[] = []; let n = 0;
  const run = async (feeds: Record<string, ort.Tensor>, o: { chunk: number }) => {
    const r = (await s.run(feeds)) as Record<string, ort.Tensor>;
    if (n++ % 8 === 4) calls.push({ feeds, chunk: o.chunk, out: Object.values(r)[0] });
    return r;
  };
  const p = evaluationPrompts[i];
  await rollout(run as never, { sample: i, prompt: p.prompt, random: seededRandom(p.seed) });
  return calls;
}
/** The chunks of tiny-arvd-l's video (meta.json): an output shaped like it is compared on the call's chunk's frames. */
const CHUNKS = 6;
/**
 * Adds each call's squared error per chunk, against fp32's output energy in both directions
 * (`fp32IsCall`: the calls are fp32's and `other` is the model, else the reverse), as the
 * evaluator's one-step error does.
 */
async function err(calls: Call[], other: ort.InferenceSession, sums: number[][], fp32IsCall: boolean) {
  for (const c of calls) {
    const y = Object.values((await other.run(c.feeds)) as Record<string, ort.Tensor>)[0].data as Float32Array;
    const x = c.out.data as Float32Array; const per = x.length / CHUNKS;
    const ref = fp32IsCall ? x : y;
    let e = 0, r = 0;
    for (let j = c.chunk * per; j < (c.chunk + 1) * per; j++) { const d = x[j] - y[j]; e += d * d; r += ref[j] * ref[j]; }
    sums[c.chunk][0] += e; sums[c.chunk][1] += r;
  }
}
const P = Number(process.env.PROMPTS ?? 16);
const fpTraj: Call[][] = [];
for (let i = 0; i < P; i++) fpTraj.push(await traj(fp32, i));
for (const path of models) {
  const s = await ort.InferenceSession.create(path, opts);
  const onFp = Array.from({ length: CHUNKS }, () => [0, 0]); const onOwn = Array.from({ length: CHUNKS }, () => [0, 0]);
  for (let i = 0; i < P; i++) { await err(fpTraj[i], s, onFp, true); await err(await traj(s, i), fp32, onOwn, false); }
  const f = (a: number[][]) => a.map(([e, r]) => (e / r).toExponential(2)).join(' ');
  const tot = (a: number[][]) => (a.reduce((x, y) => x + y[0], 0) / a.reduce((x, y) => x + y[1], 0)).toExponential(3);
  console.log(path.split('/').pop()!.padEnd(26), 'fp32 traj', tot(onFp), '|', f(onFp), '|| own traj', tot(onOwn), '|', f(onOwn));
  await s.release();
}
