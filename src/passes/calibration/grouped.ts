/**
 * Reconstruction statistics in bounded memory (`statistics-memory`, docs/calibration-memory.md).
 *
 * Collected per chunk, a layer input's Gram sums take 16·K² bytes per chunk (two folds of
 * float64 K×K) until S1's α is known, and the α-combined `H` with its two folds 24·K² more; a
 * Wan2.1-sized model needs tens of GB for all its layers at once. So when they do not fit the
 * budget together, the layers (in graph order) are cut into consecutive groups:
 *
 * 1. The first collection (ranges, reservoirs, then S1 and the scale search, for every layer)
 *    also collects the per-chunk Gram sums of the longest prefix of layers that fits; the
 *    prefix shrinks whenever a new chunk appears and it no longer fits ({@link fittingPrefix}).
 *    When every layer fits, this is the only collection, as without a budget.
 * 2. Each later group is one more run of every calibration sample through the same
 *    onnxruntime session (the float model), collecting that group's Gram sums only. It runs
 *    when the quantizer reaches the group's first layer, after the previous group's layers
 *    are reconstructed and its statistics released. α is known by then, so each product is
 *    added already weighted, into one sum per fold (gram.ts): 24·K² bytes per input whatever
 *    the chunk count ({@link inputStatisticsBytes} with `chunks` null). The weights need each
 *    chunk's row counts, taken from the first collection (the same rollouts).
 *
 * The rollouts are deterministic given the module's seeds and each call's `XᵀX` is the same
 * onnxruntime product, so a later group's `H` is the per-chunk path's up to the order of its
 * float64 sums (relative ~ calls·2⁻⁵³, gram.ts), and its `μ` is bit for bit the same. With one
 * chunk (and gram-stride 1) the order is the same too, and so is every bit.
 */
import type { Value } from '../../graph/ir/value.ts';
import type { Logger } from '../log.ts';
import type { LinearLayer } from '../quant/linear-layers.ts';
import { collectStatistics, observedInputs, type RowCount, type RowCounts } from './collect.ts';
import { type GramStats, productWeight, type ReconLookup, type ReconStats } from './gram.ts';
import { CalibrationError } from './module.ts';
import { seconds } from './progress.ts';
import type { CalibrationSession } from './session.ts';

/** The default budget: 4 GiB of statistics, which a 16 GB machine holds beside the model. */
export const DEFAULT_STATISTICS_MEMORY = 4 * 2 ** 30;
/** {@link DEFAULT_STATISTICS_MEMORY} as the option's text. */
export const DEFAULT_STATISTICS_MEMORY_TEXT = '4GiB';

/**
 * Peak bytes of one layer input's statistics. Collected per chunk (`chunks` chunks): the
 * per-chunk sums and the combined `H` with its folds, `(16·C + 24)·K²`. α-weighted (`chunks`
 * null, a group collected after S1): the two folds' sums, which are the folds' `H`, and their
 * sum, `24·K²`.
 */
export function inputStatisticsBytes(K: number, chunks: number | null): number {
  return (chunks === null ? 24 : 16 * chunks + 24) * K * K;
}

/** Peak bytes of the statistics of the distinct inputs of `layers` (`chunks` as {@link inputStatisticsBytes}). */
export function statisticsBytes(layers: readonly LinearLayer[], chunks: number | null): number {
  const ks = new Map<Value, number>();
  for (const l of layers) ks.set(l.input, l.K);
  let bytes = 0;
  for (const K of ks.values()) bytes += inputStatisticsBytes(K, chunks);
  return bytes;
}

/** Refuses a layer whose input's statistics alone exceed the budget, naming it and the option (`chunks` as {@link inputStatisticsBytes}). */
export function checkEachLayerFits(layers: readonly LinearLayer[], chunks: number | null, budget: number): void {
  for (const l of layers) {
    const bytes = inputStatisticsBytes(l.K, chunks);
    if (bytes > budget) {
      const how = chunks === null ? 'α-weighted (24·K² bytes: H and its two folds in float64, whatever the chunk count)' : `with ${chunks} chunk(s) collected per chunk`;
      throw new Error(`layer ${l.name} (K = ${l.K}) needs ${gib(bytes)} of reconstruction statistics ${how}, more than statistics-memory ${gib(budget)} allows; raise --q-arvd.statistics-memory, exclude the layer, or use reconstruct none with bias-correction false`);
    }
  }
}

/** How many leading layers have statistics that fit the budget together (`chunks` as {@link inputStatisticsBytes}). */
export function fittingPrefix(layers: readonly LinearLayer[], chunks: number | null, budget: number): number {
  const ks = new Map<Value, number>();
  let bytes = 0;
  for (let i = 0; i < layers.length; i++) {
    const l = layers[i]!;
    if (!ks.has(l.input)) {
      const b = inputStatisticsBytes(l.K, chunks);
      if (bytes + b > budget) return i;
      ks.set(l.input, l.K);
      bytes += b;
    }
  }
  return layers.length;
}

/** Consecutive groups of `layers` whose α-weighted statistics fit the budget (each as long as it can be). */
export function statisticsGroups(layers: readonly LinearLayer[], budget: number): LinearLayer[][] {
  checkEachLayerFits(layers, null, budget);
  const groups: LinearLayer[][] = [];
  for (let rest = layers.slice(); rest.length > 0; ) {
    const n = fittingPrefix(rest, null, budget);
    groups.push(rest.slice(0, n));
    rest = rest.slice(n);
  }
  return groups;
}

/** A byte count: a number, or a number with B, KB, MB, GB, KiB, MiB or GiB (`2GiB`, `512 MiB`). */
export function parseBytes(text: string, option: string): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$/i.exec(text);
  const unit = (m?.[2] ?? 'B').toLowerCase();
  const scale: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40 };
  const bytes = m ? Number(m[1]) * scale[unit]! : NaN;
  if (!(bytes > 0 && Number.isFinite(bytes))) throw new Error(`option ${option} must be a byte count above 0 such as 4GiB, 512MiB or 2000000000, got '${text}'`);
  return Math.floor(bytes);
}

/** `1.25 GiB`, `7.5 MiB`. */
export const gib = (bytes: number): string => (bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`);

/** α-combined statistics by layer name (names, not values: smooth-quant calibrates a copy of the model). */
export function combineGrams(grams: Map<Value, GramStats>, layers: readonly LinearLayer[], chunks: number[], alpha: number[]): Map<string, ReconStats> {
  const byInput = new Map<Value, ReconStats>();
  const out = new Map<string, ReconStats>();
  for (const l of layers) {
    let s = byInput.get(l.input);
    if (!s) {
      const g = grams.get(l.input);
      if (!g) continue;
      s = { ...g.combine(chunks, alpha), input: l.input.name };
      byInput.set(l.input, s);
      // Each input's per-chunk sums go as soon as they are combined: the peak is one input's combination, not all.
      grams.delete(l.input);
    }
    out.set(l.name, s);
  }
  return out;
}

/** How a group's collection runs: what the first one used. */
export interface GroupCollection {
  chunks: number[];
  alpha: number[];
  /** The first collection's row counts, which weight each product (the rollouts are the same). */
  rowCounts: RowCounts;
  threads: number;
  stride: number;
  log: Logger;
}

/**
 * Statistics made while the quantizer walks the layers: {@link prepare} (awaited before each
 * layer, in layer order) makes the layer's statistics the ones at hand, releasing earlier
 * ones. Grouped statistics (here) and sequential calibration (quant/sequential.ts) are two.
 */
export interface StatisticsByGroup extends ReconLookup {
  prepare(layer: LinearLayer): Promise<void>;
  /** Hands the statistics at hand, and every later set as it is made, to `fn` (the `.recon` writer). */
  onGroup(fn: (stats: Map<string, ReconStats>) => void): void;
  /** Releases the statistics and the calibration sessions held. */
  dispose(): Promise<void>;
}

/**
 * The statistics of the layers group by group (see the module doc): holds the calibration
 * session until {@link dispose}, and the statistics of one group at a time.
 */
export class GroupedStatistics implements StatisticsByGroup {
  private current: Map<string, ReconStats>;
  /** The group whose statistics are at hand (-1: none yet). */
  private index: number;
  private readonly groupOf = new Map<string, number>();
  /** Told each group's statistics when they are made (the first group's included, when set): the `.recon` writer. */
  private listener: ((stats: Map<string, ReconStats>) => void) | undefined;

  constructor(
    private readonly session: CalibrationSession,
    readonly groups: LinearLayer[][],
    /** The first group's statistics (collected with everything else; empty if it did not fit then). */
    first: Map<string, ReconStats>,
    private readonly collection: GroupCollection,
  ) {
    this.current = first;
    this.index = first.size > 0 ? 0 : -1;
    groups.forEach((g, i) => g.forEach((l) => this.groupOf.set(l.name, i)));
  }

  /** The statistics of a layer of the group at hand. */
  get(name: string): ReconStats | undefined {
    return this.current.get(name);
  }

  /** Hands the group at hand, and every later one as it is made, to `fn`. */
  onGroup(fn: (stats: Map<string, ReconStats>) => void): void {
    this.listener = fn;
    fn(this.current);
  }

  /** Makes the statistics of `layer`'s group the ones at hand, collecting them if needed (the previous group's are released first). */
  async prepare(layer: LinearLayer): Promise<void> {
    const g = this.groupOf.get(layer.name);
    if (g === undefined || g === this.index) return;
    const { chunks, alpha, rowCounts, threads, stride, log } = this.collection;
    const layers = this.groups[g]!;
    this.current = new Map();
    this.index = g;
    const t0 = performance.now();
    const origin = this.session.calib.origin;
    const changed = (v: Value) => new CalibrationError(origin, `the statistics of ${v.name} are collected again for a later group (statistics-memory), and its rows per chunk differ from the first collection's: grouped statistics need a module that draws the same samples every time (fixed seeds)`);
    const weight = (v: Value, chunk: number, fold: 0 | 1) => {
      const j = chunks.indexOf(chunk);
      const counts = rowCounts.get(v)?.get(chunk)?.[fold];
      if (j < 0 || !counts) throw changed(v);
      return productWeight(alpha[j]!, counts);
    };
    const stats = await collectStatistics(this.session, layers, { ranges: false, gram: { threads, stride, weight } });
    for (const [v, byChunk] of stats.rowCounts!) if (!sameCounts(byChunk, rowCounts.get(v))) throw changed(v);
    this.current = combineGrams(stats.grams!, layers, chunks, alpha);
    log.info(`statistics group ${g + 1} of ${this.groups.length} (${layers.length} layers from ${layers[0]!.name}, ${observedInputs(layers).length} inputs) collected in ${seconds(performance.now() - t0)}`);
    this.listener?.(this.current);
  }

  async dispose(): Promise<void> {
    this.current = new Map();
    await this.session.dispose();
  }
}

function sameCounts(a: Map<number, [RowCount, RowCount]>, b: Map<number, [RowCount, RowCount]> | undefined): boolean {
  if (!b || a.size !== b.size) return false;
  for (const [chunk, folds] of a) {
    const other = b.get(chunk);
    if (!other || folds.some((f, i) => f.rows !== other[i]!.rows || f.gramRows !== other[i]!.gramRows)) return false;
  }
  return true;
}
