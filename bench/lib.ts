// The benchmark's building blocks: what a case is, timing helpers, and the child-process
// runner that measures a load+save's peak RSS on its own.
import { copyFileSync, rmSync } from 'node:fs';
import { runTsChild } from '../test/helpers/child.ts';
import type { ChildReport } from '../test/helpers/big-model.ts';

export const MIB = 2 ** 20;

/** One measured row. `ms` is ours; `copyMs` copies the same bytes with fs.copyFile in the same run. */
export interface BenchRow {
  /** What was measured (a model name, a size). */
  name: string;
  /** Bytes read by one run (model file plus data file). */
  bytes: number;
  /** Median wall time of ours, in ms. */
  ms: number;
  /** Median time of fs.copyFile of the same bytes, in ms. */
  copyMs?: number;
  /** ms ÷ copyMs. */
  ratio?: number;
  /** Peak RSS of a child process doing the same work once, in MiB. */
  peakRssMiB?: number;
  /** Peak RSS ÷ the weights' size. */
  rssRatio?: number;
  runs: number;
  /** Anything else worth keeping (per-step times, what was run). */
  details?: Record<string, number | string>;
}

export interface BenchContext {
  /** A scratch folder for this case (removed afterwards). */
  tmpDir: string;
  /** Runs per timing, from `--runs` (cases may use fewer for very large inputs). */
  runs: number;
  log(message: string): void;
}

/** A benchmark case: `bench/cases/<name>.ts` exports one as default. */
export interface BenchCase {
  name: string;
  summary: string;
  /** What the case's baseline and ratio columns mean, when not fs.copyFile of the same bytes. */
  legend?: string;
  run(ctx: BenchContext): Promise<BenchRow[]>;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Collects garbage when node runs with --expose-gc (npm run bench does). */
export function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** Median time of `fn` over `runs` runs after `warmup` unmeasured ones; gc between runs. */
export async function timeMedian(fn: () => unknown, runs: number, warmup = 1): Promise<{ ms: number; all: number[] }> {
  const all: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    collectGarbage();
    const t0 = performance.now();
    await fn();
    const dt = performance.now() - t0;
    if (i >= warmup) all.push(dt);
  }
  return { ms: median(all), all };
}

/**
 * Times `sessions` interleaved: each round calls every session once with `feeds`, in order,
 * gc first, so that drift in machine load hits all alike. Returns each session's times (ms),
 * round by round; {@link ratioStats} compares them with a baseline's.
 */
export async function timeInterleaved(sessions: { run(feeds: never): Promise<unknown> }[], feeds: Record<string, unknown>, rounds: number): Promise<number[][]> {
  const times = sessions.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    collectGarbage();
    for (let i = 0; i < sessions.length; i++) {
      const t0 = performance.now();
      await sessions[i]!.run(feeds as never);
      times[i]!.push(performance.now() - t0);
    }
  }
  return times;
}

/** The per-round ratios of `times` to `baseline` (same rounds): median, interquartile range, extremes. */
export function ratioStats(times: number[], baseline: number[]): { ratio: number; p25: number; p75: number; min: number; max: number } {
  const ratios = times.map((t, r) => t / baseline[r]!).sort((a, b) => a - b);
  const at = (p: number) => ratios[Math.round(p * (ratios.length - 1))]!;
  return { ratio: median(ratios), p25: at(0.25), p75: at(0.75), min: ratios[0]!, max: ratios[ratios.length - 1]! };
}

/** Median time of copying each file to `<dest dir>` with fs.copyFile (the copies are removed). */
export async function timeCopy(files: { from: string; to: string }[], runs: number, warmup = 1): Promise<number> {
  const { ms } = await timeMedian(() => {
    for (const f of files) copyFileSync(f.from, f.to);
  }, runs, warmup);
  for (const f of files) rmSync(f.to, { force: true });
  return ms;
}

/** Runs the big-model CLI (test/helpers/big-model.ts) in a child process. */
export function bigModelChild(args: string[]): Promise<ChildReport> {
  return runTsChild<ChildReport>('test/helpers/big-model.ts', args, { nodeArgs: ['--expose-gc'] });
}

export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));
