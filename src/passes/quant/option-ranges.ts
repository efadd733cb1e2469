/**
 * Range checks of the quantization passes' numeric options, beyond the integer/number types
 * the option parser enforces: a value outside its range is refused naming the option, rather
 * than accepted and silently producing a meaningless model (smooth-alpha 5) or none at all
 * (reservoir-rows 0).
 */

/** The options checked here, resolved (camelCase) as the pass manager hands them over. */
export interface RangedOptions {
  smoothAlpha?: number;
  reservoirRows?: number;
  minK?: number;
  calibThreads?: number;
  threads?: number;
  sensitivitySamples?: number;
  calibTimeout?: number;
  iterations?: number;
}

/** [option name, resolved key, test, what it must be] */
const RANGES: readonly [string, keyof RangedOptions, (v: number) => boolean, string][] = [
  ['smooth-alpha', 'smoothAlpha', (v) => v > 0 && v < 1, 'between 0 and 1 (exclusive)'],
  ['reservoir-rows', 'reservoirRows', (v) => v >= 1, 'at least 1'],
  ['min-k', 'minK', (v) => v >= 0, 'at least 0'],
  ['calib-threads', 'calibThreads', (v) => v >= 0, 'at least 0 (0: onnxruntime chooses)'],
  ['threads', 'threads', (v) => v >= 0, 'at least 0 (0: one per core)'],
  ['sensitivity-samples', 'sensitivitySamples', (v) => v >= 0, 'at least 0 (0: all samples)'],
  ['iterations', 'iterations', (v) => v >= 1, 'at least 1'],
  ['calib-timeout', 'calibTimeout', (v) => v > 0 && v <= 2 ** 31 / 1000, 'a number of seconds above 0 (and below 24 days)'],
];

/** Throws naming the first option whose value is out of its range. */
export function checkOptionRanges(o: RangedOptions): void {
  for (const [option, key, ok, must] of RANGES) {
    const v = o[key];
    if (v !== undefined && !(Number.isFinite(v) && ok(v))) throw new Error(`option ${option} must be ${must}, got ${v}`);
  }
}
