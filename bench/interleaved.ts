// Timing ONNX models against fp32 in onnxruntime-node on the Wan-shaped block
// (test/helpers/wan-block.ts), interleaved: one call of each model per round, so that load on the
// machine hits all alike; a row's ratio is the median over rounds of (model ÷ fp32 in the same
// round). Shared by the speed, w8-kernel and w4a8-nbits cases.
import { statSync } from 'node:fs';
import { loadavg } from 'node:os';
import * as ort from 'onnxruntime-node';
import { seededRandom } from '../src/kernels/random.ts';
import { optimizedCensus } from '../test/helpers/census.ts';
import { WAN_SHAPE } from '../test/helpers/wan-block.ts';
import { type BenchRow, collectGarbage, median, ratioStats, round } from './lib.ts';

/**
 * How many rounds a stage at one row count runs: at least `min`; then more, up to `max`, while
 * some model's per-round ratios to fp32 are spread (interquartile range above `settled` × the
 * median) and the stage has run less than `budgetMs`; `warmup`: one untimed call of each model first.
 */
export type RoundPlan = { min: number; max: number; settled: number; budgetMs: number; warmup: boolean };

/** One model to time: ours or an anchor. */
export interface Entry {
  name: string;
  path: string;
  census?: string;
  /** Ours only: the name of the anchor entry it is compared with. */
  anchor?: string;
  /** q-arvd only: the name of minmax's entry of the same format and bits (dual ÷ single). */
  single?: string;
}

/** Op counts of the optimized graph, `Op×n` joined. */
export async function censusText(path: string): Promise<string> {
  const c = await optimizedCensus(path);
  const ops = Object.entries(c.ops).sort(([a], [b]) => a.localeCompare(b)).map(([op, n]) => `${op}×${n}`).join(' ');
  return c.floatWeights.length ? `${ops} | FLOAT WEIGHTS: ${c.floatWeights.length}` : ops;
}



/** The worst (largest) interquartile range of the per-round ratios to fp32, relative to the median, over every model. */
function worstSpread(times: number[][]): number {
  let worst = 0;
  for (let i = 1; i < times.length; i++) {
    const s = ratioStats(times[i]!, times[0]!);
    worst = Math.max(worst, (s.p75 - s.p25) / s.ratio);
  }
  return worst;
}

/**
 * Calls every session once per round, gc first, for the rounds `plan` gives ({@link RoundPlan});
 * each session's times (ms), round by round. The order is the entries' except that on odd rounds
 * each q-arvd model runs before its minmax partner (`partner[i]`: the index of the model that `i`
 * runs next to), so that neither of a pair always runs second.
 */
async function timeStage(sessions: ort.InferenceSession[], x: ort.Tensor, plan: RoundPlan, partner: (number | undefined)[]): Promise<number[][]> {
  if (plan.warmup) for (const s of sessions) await s.run({ x });
  const times = sessions.map(() => [] as number[]);
  const t0 = performance.now();
  for (let r = 0; r < plan.max; r++) {
    if (r >= plan.min && (performance.now() - t0 >= plan.budgetMs || worstSpread(times) <= plan.settled)) break;
    collectGarbage();
    const order = sessions.map((_, i) => (r % 2 === 1 && partner[i] !== undefined ? partner[i]! : i));
    for (const i of order) {
      const t = performance.now();
      await sessions[i]!.run({ x });
      times[i]!.push(performance.now() - t);
    }
  }
  return times;
}

/**
 * Times every entry against fp32 (entries[0]), interleaved; one row per entry and row count, ours with its ratio to its anchor in the same rounds.
 * `plans`: the rounds per row count (its keys are the row counts run).
 */
export async function timeAll(entries: Entry[], variant: string, threads: number, log: (m: string) => void, plans: Record<number, RoundPlan>): Promise<BenchRow[]> {
  const sessions: ort.InferenceSession[] = [];
  for (const e of entries) sessions.push(await ort.InferenceSession.create(e.path, { intraOpNumThreads: threads, interOpNumThreads: 1, logSeverityLevel: 3 }));
  const index = new Map(entries.map((e, i) => [e.name, i]));
  // A q-arvd entry and its minmax partner, adjacent (quantizeAll's order): they swap places on odd rounds.
  const partner: (number | undefined)[] = entries.map(() => undefined);
  entries.forEach((e, i) => {
    const s = e.single === undefined ? undefined : index.get(e.single);
    if (s === i - 1) [partner[i], partner[s]] = [s, i];
  });
  const rows: BenchRow[] = [];
  try {
    const random = seededRandom(11);
    for (const M of Object.keys(plans).map(Number)) {
      const x = new ort.Tensor('float32', random.normalArray(M * WAN_SHAPE.dim), [M, WAN_SHAPE.dim]);
      // Other work on the machine moves these figures: the 1-minute load average as the stage starts.
      const load = round(loadavg()[0]!, 1);
      const times = await timeStage(sessions, x, plans[M]!, partner);
      const rounds = times[0]!.length;
      const fp32 = median(times[0]!);
      const cells: string[] = [];
      entries.forEach((e, i) => {
        const s = ratioStats(times[i]!, times[0]!);
        const a = e.anchor === undefined ? undefined : index.get(e.anchor);
        const vs = a === undefined ? undefined : ratioStats(times[i]!, times[a]!);
        const s1 = e.single === undefined ? undefined : index.get(e.single);
        const vsSingle = s1 === undefined ? undefined : ratioStats(times[i]!, times[s1]!);
        rows.push({
          name: `${variant} ${e.name} rows ${M} ${threads}T`,
          bytes: statSync(e.path).size,
          ms: round(median(times[i]!), 2),
          copyMs: round(fp32, 2),
          ratio: round(s.ratio, 2),
          runs: rounds,
          details: {
            spreadMin: round(s.min, 2),
            spreadMax: round(s.max, 2),
            // Fastest call ÷ fp32's fastest: what each runs at when nothing else got in the way,
            // the steadier figure when other work on the machine spreads the rounds.
            best: round(Math.min(...times[i]!) / Math.min(...times[0]!), 2),
            p25: round(s.p25, 2),
            p75: round(s.p75, 2),
            load,
            ...(e.census ? { census: e.census } : {}),
            ...(vs ? { anchor: e.anchor!, vsAnchor: round(vs.ratio, 2), vsAnchorMin: round(vs.min, 2), vsAnchorMax: round(vs.max, 2) } : {}),
            ...(vsSingle ? { vsSingle: round(vsSingle.ratio, 3), vsSingleP25: round(vsSingle.p25, 3), vsSingleP75: round(vsSingle.p75, 3), vsSingleMin: round(vsSingle.min, 3), vsSingleMax: round(vsSingle.max, 3) } : {}),
          },
        });
        if (i > 0) cells.push(`${e.name} ${s.ratio.toFixed(2)} [${s.min.toFixed(2)}–${s.max.toFixed(2)}] best ${(Math.min(...times[i]!) / Math.min(...times[0]!)).toFixed(2)}`);
      });
      log(`${variant} rows ${M}, ${threads} thread(s), ${rounds} rounds, load ${load}: fp32 ${fp32.toFixed(1)} ms; ${cells.join('; ')}`);
    }
  } finally {
    for (const s of sessions) await s.release();
  }
  return rows;
}

/** Rows carrying `details[key]`, by model and thread count (`<variant> <model> <n>T`), then by row count. */
export function byModel(rows: BenchRow[], key: string): Map<string, Map<number, BenchRow>> {
  const out = new Map<string, Map<number, BenchRow>>();
  for (const r of rows) {
    const m = /^(.*) rows (\d+) (\d+T)$/.exec(r.name);
    if (!m || r.details?.[key] === undefined) continue;
    const model = `${m[1]} ${m[3]}`;
    if (!out.has(model)) out.set(model, new Map());
    out.get(model)!.set(Number(m[2]), r);
  }
  return out;
}

/** The row counts in {@link byModel}'s result, ascending: the rows the case ran, a table's columns. */
export function rowCounts(models: Map<string, Map<number, BenchRow>>): number[] {
  return [...new Set([...models.values()].flatMap((cells) => [...cells.keys()]))].sort((a, b) => a - b);
}
