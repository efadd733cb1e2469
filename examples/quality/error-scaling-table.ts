/**
 * The tables of `error-scaling.ts`, from a run's saved points (so that a saved run can be
 * tabulated again, and a run of parts only compared with an earlier run's minmax curve).
 */
import { seededRandom } from '../../src/kernels/random.ts';
import type { SeededPrompt } from '../tiny-arvd/prompts.ts';

/** One evaluated model: family, scale, file and what the evaluator measured. */
export interface ScalingPoint {
  family: string;
  s: number;
  path: string;
  /** Final-video MSE against fp32 over the prompts. */
  mse: number;
  /** The evaluator's one-step error (fp32's calls replayed). */
  step: number;
  chunkMse: number[];
  promptMse: number[];
}

/** What `error-scaling.ts` saves as JSON. */
export interface ScalingRun {
  model: string;
  wBits?: string;
  prompts: SeededPrompt[];
  draw: number;
  checks: string[];
  points: ScalingPoint[];
  timings: { quantizeMs: number; writeMs: number; evaluateMs: number; total: number };
  load: { start: string; end: string };
}

const exp = (x: number) => x.toExponential(2);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
/** A final-MSE statistic of a point over a set of prompt indices (the bootstrap resamples them). */
type Stat = (m: ScalingPoint) => number;
const arithmetic = (idx: number[]): Stat => (m) => idx.reduce((s, i) => s + m.promptMse[i]!, 0) / idx.length;
const geometric = (idx: number[]): Stat => (m) => Math.exp(idx.reduce((s, i) => s + Math.log(m.promptMse[i]!), 0) / idx.length);

/** The families with points at two or more scales: the curves. */
function curveFamilies(points: ScalingPoint[]): string[] {
  const scales = new Map<string, Set<number>>();
  for (const p of points) scales.set(p.family, (scales.get(p.family) ?? new Set()).add(p.s));
  return [...scales].filter(([, s]) => s.size > 1).map(([f]) => f);
}

/**
 * `f` at one-step error `e` on the piecewise-linear log–log curve through `pts` (sorted by
 * one-step error); outside its range the end segment extended.
 */
function interpolate(pts: ScalingPoint[], e: number, f: Stat): number {
  let i = pts.findIndex((p) => p.step >= e);
  if (i <= 0) i = i === 0 ? 1 : pts.length - 1;
  const [a, b] = [pts[i - 1]!, pts[i]!];
  const t = (Math.log(e) - Math.log(a.step)) / (Math.log(b.step) - Math.log(a.step));
  return Math.exp(Math.log(f(a)) + t * (Math.log(f(b)) - Math.log(f(a))));
}

/** The one-step error at which the curve `pts` reaches final MSE `F` (the first crossing, log–log). */
function inverse(pts: ScalingPoint[], F: number): number {
  let i = pts.findIndex((p) => p.mse >= F);
  if (i <= 0) i = i === 0 ? 1 : pts.length - 1;
  const [a, b] = [pts[i - 1]!, pts[i]!];
  const t = (Math.log(F) - Math.log(a.mse)) / (Math.log(b.mse) - Math.log(a.mse));
  return Math.exp(Math.log(a.step) + t * (Math.log(b.step) - Math.log(a.step)));
}

/** 5–95% range of `stat` over 2000 resamples of the prompts (the same resample for every model: they share prompts and seeds). */
function bootstrap(prompts: number, stat: (idx: number[]) => number, n = 2000): [number, number] {
  const r = seededRandom(7);
  const vals: number[] = [];
  for (let k = 0; k < n; k++) vals.push(stat(Array.from({ length: prompts }, () => r.int(prompts))));
  vals.sort((a, b) => a - b);
  return [vals[Math.floor(0.05 * n)]!, vals[Math.floor(0.95 * n)]!];
}

/**
 * The run as text: one row per model (one-step error, final MSE, its ratio to minmax at
 * s = 1, and to the minmax curve at the same one-step error: of the mean over prompts and of
 * the geometric mean, each with its bootstrap range), the checks, per curve its log–log
 * slopes and the one-step error it needs for 0.6× and 0.5× minmax's final MSE, and the times.
 * @param earlier a run whose minmax points are the curve when `run` has none.
 */
export function formatScaling(run: ScalingRun, earlier?: ScalingRun): string {
  const all = Array.from({ length: run.prompts.length }, (_, i) => i);
  const curveOf = (points: ScalingPoint[], family: string) => points.filter((p) => p.family === family).sort((a, b) => a.step - b.step);
  const families = curveFamilies(run.points);
  const mm = families.includes('minmax') ? curveOf(run.points, 'minmax') : earlier ? curveOf(earlier.points, 'minmax') : [];
  const base = mm.find((m) => m.s === 1);
  const chunks = run.points[0]?.chunkMse.length ?? 0;
  const header = ['family', 's', '1-step', 'final MSE', 'PSNR dB', '×minmax s=1', 'vs minmax curve', '5–95%', 'geo vs curve', '5–95%', ...Array.from({ length: chunks }, (_, c) => `c${c}`)];
  const rows = run.points.map((m) => {
    const onCurve = mm.length > 1 && m.family !== 'minmax';
    const ratio = (f: (idx: number[]) => Stat) => (idx: number[]) => f(idx)(m) / interpolate(mm, m.step, f(idx));
    const cells = (f: (idx: number[]) => Stat) => {
      if (!onCurve) return ['-', '-'];
      const [lo, hi] = bootstrap(run.prompts.length, ratio(f));
      return [ratio(f)(all).toFixed(3), `${lo.toFixed(2)}–${hi.toFixed(2)}`];
    };
    return [m.family, String(m.s), exp(m.step), exp(m.mse), (10 * Math.log10(4 / m.mse)).toFixed(2), base ? (m.mse / base.mse).toFixed(3) : '-', ...cells(arithmetic), ...cells(geometric), ...m.chunkMse.map(exp)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const lines = [
    `${run.model}: W${run.wBits ?? '4'} weight-only error ΔW scaled by s (fp32 weights W + s·ΔW, biases b + s·Δb); ${run.prompts.length} evaluation prompts; q-arvd calibration draw ${run.draw}`,
    `1-step = the evaluator's one-step error (fp32's calls replayed, relative squared error); final MSE vs fp32 (mean over prompts); ` +
      `vs minmax curve = final MSE ÷ the minmax curve's at the same 1-step (log–log interpolation, extrapolated outside its range${families.includes('minmax') ? '' : '; the curve of an earlier run'}); ` +
      `geo vs curve = the same with the geometric mean over prompts (a rollout's MSE is heavy-tailed); 5–95%: 2000 bootstrap resamples of the prompts`,
    fmt(header),
    fmt(widths.map((w) => '-'.repeat(w))),
    ...rows.map(fmt),
    '',
    ...run.checks,
  ];
  for (const family of base ? families : []) {
    const c = curveOf(run.points, family);
    const slopes = c.slice(1).map((p, i) => (Math.log(p.mse) - Math.log(c[i]!.mse)) / (Math.log(p.step) - Math.log(c[i]!.step)));
    const need = [0.6, 0.5].map((k) => `${k}× minmax's final MSE at 1-step ${(inverse(c, k * base!.mse) / base!.step).toFixed(3)}× minmax's`);
    lines.push(`${family}: d log(final) / d log(1-step) between neighbouring s: ${slopes.map((x) => x.toFixed(2)).join(' ')}; ${need.join('; ')}`);
  }
  const t = run.timings;
  lines.push(
    '',
    `time: quantization ${seconds(t.quantizeMs)}, writing the scaled models ${seconds(t.writeMs)}, evaluation ${seconds(t.evaluateMs)} (${run.points.length} models), total ${seconds(t.total)}; load average (1, 5, 15 min) at the start ${run.load.start}, at the end ${run.load.end}`,
  );
  return lines.join('\n');
}
