/**
 * How the final-video error grows with the per-call ("one-step") error, for weight errors of
 * different origins (issue 14; the write-up is docs/error-propagation.md).
 *
 * Per family of weight errors ΔW (and bias changes Δb), fp32 models with weights `W + s·ΔW`
 * and biases `b + s·Δb` for each scale s; families:
 * - `minmax`: Ŵ − W of minmax W4 weight-only, per output channel;
 * - `q-arvd`: Ŵ − W (and b̂ − b: bias correction) of the default q-arvd at W4 weight-only
 *   (the quality table's `q-arvd GPTQ S1 on dual auto` row, calibrated on the model's module);
 * - `noise`: Gaussian ΔW with minmax's energy per layer (‖ΔW‖_F of each layer), no Δb;
 * - with `--parts`, q-arvd's error split at s = 1: `q-arvd no-bc` (its ΔW without the bias
 *   change), `q-arvd mean-only` (the bias change alone), `q-arvd block k` (only the layers of
 *   block k), `q-arvd outer` (only the layers outside the blocks: embeddings, time projection,
 *   head) and each of those alone, `q-arvd blocks only`; the same parts of minmax's error.
 * `--w-bits 8` does the same with 8-bit weights (W8 weight-only: not a row of the quality
 * table; q-arvd then reads the W4 run's calibration statistics and S1 curve when they exist).
 * Ŵ and b̂ are read from the converted models (`integer-kernels never`: every layer a float
 * MatMul on its dequantized weight, see effective-weights.ts) and checked: the s = 1 model
 * against the converted one on every call of one fp32 rollout.
 *
 * Every model is then evaluated as the quality table evaluates (tiny-arvd's evaluator: final-
 * video MSE against fp32 over the module's evaluation prompts and seeds, per chunk and per
 * prompt, and the one-step error on fp32's replayed calls). Printed: one row per model, then
 * per family the final MSE against the minmax curve at the same one-step error (log–log
 * interpolation; a bootstrap over prompts gives its 5–95% range), and the one-step error each
 * curve needs for a final MSE of 0.6× and 0.5× minmax's.
 *
 *   node --import tsx examples/quality/error-scaling.ts [--model tiny-arvd-l] [--scales 0.125,0.25,…]
 *     [--families minmax,q-arvd,noise] [--parts [--parts-match regex]] [--w-bits 4|8] [--prompts N] [--draw 0]
 *     [--parallel 2] [--out out/error-scaling] [--resume] [--curve earlier.json] [--table saved.json]
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { seededRandom } from '../../src/kernels/random.ts';
import type { EvaluationResult, ModelSpec } from '../tiny-arvd/evaluate.ts';
import { evaluateInParallel } from '../tiny-arvd/evaluate-parallel.ts';
import type { RunModel } from '../tiny-arvd/rollout-module.ts';
import type { SeededPrompt } from '../tiny-arvd/prompts.ts';
import { formatScaling, type ScalingPoint, type ScalingRun } from './error-scaling-table.ts';
import { deltasOf, effectiveWeights, type LayerDelta, type LayerWeights, writeScaledModel } from './effective-weights.ts';
import { MODELS } from './harness.ts';
import { drawModuleFile, planJobs, type QuantJob, runJobs } from './jobs.ts';
import { BIT_WIDTHS, ROWS } from './rows.ts';

const args = await yargs(hideBin(process.argv))
  .scriptName('error-scaling')
  .option('model', { type: 'string', default: 'tiny-arvd-l', choices: Object.keys(MODELS) })
  .option('w-bits', { type: 'string', default: '4', choices: ['4', '8'], describe: 'weight bits of the weight-only models ΔW comes from' })
  .option('scales', { type: 'string', default: '0.125,0.25,0.35,0.5,0.6,0.71,1,1.41,2', describe: 'values of s, comma-separated (empty: none)' })
  .option('converted', { type: 'boolean', default: true, describe: 'also evaluate the converted models themselves' })
  .option('families', { type: 'string', default: 'minmax,q-arvd,noise', describe: 'families of ΔW (minmax, q-arvd, noise)' })
  .option('parts', { type: 'boolean', default: false, describe: 'also q-arvd\'s error split (no bias change, bias change only, per block) at s = 1' })
  .option('parts-match', { type: 'string', describe: 'only the parts whose label matches this regular expression' })
  .option('prompts', { type: 'number', describe: 'the first N evaluation prompts (default all)' })
  .option('draw', { type: 'number', default: 0, describe: 'calibration draw of the q-arvd model (as the quality table\'s)' })
  .option('parallel', { type: 'number', default: 2, describe: 'child processes for quantization and evaluation' })
  .option('batch', { type: 'number', default: 8, describe: 'models per evaluation batch (each worker holds a batch\'s sessions)' })
  .option('out', { type: 'string', default: 'out/error-scaling' })
  .option('curve', { type: 'string', describe: 'the error-scaling JSON of an earlier run (same model and prompts) whose minmax points are the curve, when this run has none' })
  .option('table', { type: 'string', describe: 'only print the tables of a saved run (its JSON), with --curve' })
  .option('resume', { type: 'boolean', default: false, describe: 'reuse the converted and scaled models already in --out' })
  .strict()
  .help()
  .parseAsync();

const earlier = args.curve ? (JSON.parse(readFileSync(args.curve, 'utf8')) as ScalingRun) : undefined;
if (args.table) {
  process.stdout.write(`${formatScaling(JSON.parse(readFileSync(args.table, 'utf8')) as ScalingRun, earlier)}\n`);
  process.exit(0);
}
const model = MODELS[args.model]!;
const out = resolve(args.out, model.name);
mkdirSync(out, { recursive: true });
const log = (line: string) => process.stderr.write(`${line}\n`);
const load = () => loadavg().map((x) => x.toFixed(2)).join(' ');
const started = performance.now();
const loadStart = load();
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const scales = args.scales.split(',').filter((x) => x.trim() !== '').map(Number);
const families = args.families.split(',').map((s) => s.trim());
const mod = (await import(model.rolloutPath)) as { evaluationPrompts: SeededPrompt[]; rollout: (run: RunModel, ctx: { sample: number; prompt?: string; random: ReturnType<typeof seededRandom> }) => Promise<ort.Tensor> };
const prompts = mod.evaluationPrompts.slice(0, args.prompts ?? mod.evaluationPrompts.length);
if (earlier && (earlier.model !== model.name || JSON.stringify(earlier.prompts) !== JSON.stringify(prompts))) throw new Error(`--curve: ${args.curve} is of another model or other prompts`);

// 1. The two W4 weight-only models, as the quality table makes them, with `integer-kernels never`
//    (the weights are the same; only the emitted form differs), and again emitted as usual: that
//    run reads the first one's calibration statistics and S1 curve instead of measuring them.
const bits = BIT_WIDTHS.filter((b) => b.label === (args['w-bits'] === '4' ? 'W4' : 'W8'));
const QARVD_ROW = 'q-arvd GPTQ S1 on dual auto';
const rows = ROWS.filter((r) => r.label === 'minmax' || r.label === QARVD_ROW);
const calibFiles = Array.from({ length: args.draw + 1 }, (_, d) => drawModuleFile(model.rolloutPath, d, out));
const quantJobs = planJobs(rows, bits, calibFiles, out).jobs.filter((j) => j.draw === args.draw);
// Weight-only: the collection (fp32 activations) does not depend on the bits; S1's curve is the W4 run's.
const saved = { statistics: join(out, `q-arvd-W4-d${args.draw}.statistics.bin`), sensitivity: join(out, `q-arvd-W4-d${args.draw}.sensitivity.json`) };
const reuse = existsSync(saved.statistics) && existsSync(saved.sensitivity);
const statistics: Record<string, string> = reuse ? { 'load-statistics': saved.statistics, sensitivity: saved.sensitivity } : { 'save-statistics': saved.statistics, 'save-sensitivity': saved.sensitivity };
const floatJobs: QuantJob[] = quantJobs.map((j) => ({
  ...j,
  id: `${j.id}-float`,
  output: join(out, `${j.id}-float.onnx`),
  options: { ...j.options, 'integer-kernels': 'never', ...(j.row.pass === 'q-arvd' ? statistics : {}) },
}));
const emittedJobs: QuantJob[] = quantJobs.map((j) => (j.row.pass === 'q-arvd' ? { ...j, options: { ...j.options, 'load-statistics': saved.statistics, sensitivity: saved.sensitivity } } : j));
let t0 = performance.now();
await runJobs(floatJobs, model.fp32Path, args.parallel, (j) => log(`converted ${j.id} in ${Number.isNaN(j.ms) ? 'an earlier run' : seconds(j.ms!)}`), args.resume);
await runJobs(emittedJobs, model.fp32Path, args.parallel, (j) => log(`converted ${j.id} in ${Number.isNaN(j.ms) ? 'an earlier run' : seconds(j.ms!)}`), args.resume);
const quantizeMs = performance.now() - t0;

// 2. One fp32 rollout (the first evaluation prompt), every call kept: the feeds that read the
//    weights, and the calls the s = 1 check runs.
type Call = { feeds: Record<string, ort.Tensor>; output: Float32Array };
async function rolloutCalls(path: string, p: SeededPrompt): Promise<Call[]> {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
  const calls: Call[] = [];
  const run: RunModel = async (feeds) => {
    const r = (await session.run(feeds)) as Record<string, ort.Tensor>;
    calls.push({ feeds, output: Object.values(r)[0]!.data as Float32Array });
    return r;
  };
  await mod.rollout(run, { sample: 0, prompt: p.prompt, random: seededRandom(p.seed) });
  await session.release();
  return calls;
}
const calls = await rolloutCalls(model.fp32Path, prompts[0]!);

/** Outputs of `path` on `calls`, against the calls' outputs and against `other`'s: relative squared error and max |Δ|. */
async function compareOnCalls(path: string, other: string): Promise<{ vsCalls: number; vsOther: number; maxAbs: number }> {
  const a = await ort.InferenceSession.create(path, { intraOpNumThreads: 1 });
  const b = await ort.InferenceSession.create(other, { intraOpNumThreads: 1 });
  let e1 = 0, e2 = 0, ref = 0, maxAbs = 0;
  for (const c of calls) {
    const ya = Object.values((await a.run(c.feeds)) as Record<string, ort.Tensor>)[0]!.data as Float32Array;
    const yb = Object.values((await b.run(c.feeds)) as Record<string, ort.Tensor>)[0]!.data as Float32Array;
    for (let i = 0; i < ya.length; i++) {
      e1 += (ya[i]! - c.output[i]!) ** 2;
      e2 += (ya[i]! - yb[i]!) ** 2;
      ref += c.output[i]! ** 2;
      maxAbs = Math.max(maxAbs, Math.abs(ya[i]! - yb[i]!));
    }
  }
  await a.release();
  await b.release();
  return { vsCalls: e1 / ref, vsOther: e2 / ref, maxAbs };
}

// 3. Ŵ, b̂ of both models; the s = 1 float model against the converted one.
const checks: string[] = [];
const weights = new Map<string, LayerWeights[]>();
for (const [i, job] of floatJobs.entries()) {
  const family = job.row.pass;
  const layers = await effectiveWeights(model.fp32Path, job.output, calls[0]!.feeds);
  weights.set(family, layers);
  const s1 = join(out, `${family}-W${args['w-bits']}-check-s1.onnx`);
  writeScaledModel(model.fp32Path, deltasOf(layers), 1, s1);
  const vsFloat = await compareOnCalls(s1, job.output);
  const vsEmitted = await compareOnCalls(s1, emittedJobs[i]!.output);
  checks.push(
    `${family}: the s = 1 float model on the ${calls.length} calls of one fp32 rollout: relative squared error vs fp32 ${vsFloat.vsCalls.toExponential(3)}; ` +
      `vs the converted model (integer-kernels never) ${vsFloat.vsOther.toExponential(2)} (max |Δ| ${vsFloat.maxAbs.toExponential(2)}); ` +
      `vs the model emitted as usual (integer-kernels auto) ${vsEmitted.vsOther.toExponential(2)} (max |Δ| ${vsEmitted.maxAbs.toExponential(2)})`,
  );
  log(checks.at(-1)!);
}

// 4. The families and their scaled models.
/** Gaussian ΔW with the energy of `like`'s ΔW per layer, no bias change (seeded per layer). */
function noiseLike(like: LayerDelta[]): LayerDelta[] {
  return like.map((d, l) => {
    const energy = d.dW.reduce((a, v) => a + v * v, 0);
    const r = seededRandom(1000 + l);
    const z = Float64Array.from({ length: d.dW.length }, () => r.normal());
    const k = Math.sqrt(energy / z.reduce((a, v) => a + v * v, 0));
    return { name: d.name, dW: z.map((v) => v * k), dB: new Float64Array(d.dB.length) };
  });
}
const zero = (d: LayerDelta): LayerDelta => ({ name: d.name, dW: new Float64Array(d.dW.length), dB: new Float64Array(d.dB.length) });
const blockOf = (name: string) => /^\/blocks\.(\d+)\//.exec(name)?.[1];
const familyDeltas = new Map<string, LayerDelta[]>();
const minmaxDeltas = deltasOf(weights.get('minmax')!);
const qarvdDeltas = deltasOf(weights.get('q-arvd')!);
if (families.includes('minmax')) familyDeltas.set('minmax', minmaxDeltas);
if (families.includes('q-arvd')) familyDeltas.set('q-arvd', qarvdDeltas);
if (families.includes('noise')) familyDeltas.set('noise', noiseLike(minmaxDeltas));
const parts = new Map<string, LayerDelta[]>();
/** `deltas` with only the layers `keep` selects (the others unchanged from fp32). */
const only = (deltas: LayerDelta[], keep: (name: string) => boolean) => deltas.map((d) => (keep(d.name) ? d : zero(d)));
if (args.parts) {
  parts.set('q-arvd no-bc', qarvdDeltas.map((d) => ({ ...d, dB: new Float64Array(d.dB.length) })));
  parts.set('q-arvd mean-only', qarvdDeltas.map((d) => ({ ...d, dW: new Float64Array(d.dW.length) })));
  const blocks = [...new Set(qarvdDeltas.map((d) => blockOf(d.name)).filter((b) => b !== undefined))];
  const outer = (n: string) => blockOf(n) === undefined;
  // '/time_embedding/time_embedding.0/MatMul' → 'time_embedding.0', '/head/MatMul' → 'head'.
  const module = (name: string) => name.split('/').filter(Boolean).at(-2) ?? name;
  for (const [family, deltas] of [['q-arvd', qarvdDeltas], ['minmax', minmaxDeltas]] as const) {
    for (const blk of blocks) parts.set(`${family} block ${blk}`, only(deltas, (n) => blockOf(n) === blk));
    parts.set(`${family} outer`, only(deltas, outer));
    parts.set(`${family} blocks only`, only(deltas, (n) => !outer(n)));
    for (const d of deltas.filter((x) => outer(x.name))) parts.set(`${family} ${module(d.name)}`, only(deltas, (n) => n === d.name));
  }
  if (args['parts-match']) {
    const keep = new RegExp(args['parts-match']);
    for (const k of [...parts.keys()]) if (!keep.test(k)) parts.delete(k);
  }
}

const planned: { family: string; s: number; path: string }[] = [];
const fileOf = (family: string, s: number) => join(out, `${family.replace(/[^A-Za-z0-9.]+/g, '-')}-W${args['w-bits']}-s${s}.onnx`);
t0 = performance.now();
for (const [family, deltas] of familyDeltas) {
  for (const s of scales) {
    const path = fileOf(family, s);
    if (!(args.resume && existsSync(path))) writeScaledModel(model.fp32Path, deltas, s, path);
    planned.push({ family, s, path });
  }
}
for (const [family, deltas] of parts) {
  const path = fileOf(family, 1);
  if (!(args.resume && existsSync(path))) writeScaledModel(model.fp32Path, deltas, 1, path);
  planned.push({ family, s: 1, path });
}
// The converted models themselves, for the link with the quality table.
if (args.converted) for (const j of [...floatJobs, ...emittedJobs]) planned.push({ family: `${j.row.pass} converted${j.options['integer-kernels'] === 'never' ? ' (never)' : ''}`, s: 1, path: j.output });
const writeMs = performance.now() - t0;

// 5. Evaluation, in batches: the first rolls out fp32, the others reuse its videos and calls.
t0 = performance.now();
const specs: ModelSpec[] = planned.map((p, i) => ({ name: `m${i}`, path: p.path }));
let first: EvaluationResult | undefined;
const evaluated: EvaluationResult['models'] = [];
for (let i = 0; i < specs.length; i += args.batch) {
  const batch = specs.slice(i, i + args.batch);
  const reference = first && { videos: first.fp32.videos, dims: first.videoDims, chunks: first.chunks, replays: first.replays };
  const r = await evaluateInParallel({ fp32Path: model.fp32Path, models: batch, prompts, rollout: model.rolloutPath, latencyRuns: 0, workers: args.parallel, ...(reference ? { reference } : {}) });
  first ??= r;
  evaluated.push(...r.models);
  log(`evaluated ${Math.min(i + args.batch, specs.length)}/${specs.length} models (${seconds(performance.now() - t0)}, load ${load()})`);
}
const evaluateMs = performance.now() - t0;

// 6. The tables.
const points: ScalingPoint[] = planned.map((p, i) => ({ ...p, mse: evaluated[i]!.mse, step: evaluated[i]!.stepError, chunkMse: evaluated[i]!.chunkMse, promptMse: evaluated[i]!.promptMse }));
const run: ScalingRun = { model: model.name, wBits: args['w-bits'], prompts, draw: args.draw, checks, points, timings: { quantizeMs, writeMs, evaluateMs, total: performance.now() - started }, load: { start: loadStart, end: load() } };
const stem = `error-scaling-W${args['w-bits']}${args.parts ? '-parts' : ''}`;
writeFileSync(join(out, `${stem}.json`), `${JSON.stringify(run, null, 1)}\n`);
const text = formatScaling(run, earlier);
writeFileSync(join(out, `${stem}.txt`), `${text}\n`);
process.stdout.write(`${text}\n`);
