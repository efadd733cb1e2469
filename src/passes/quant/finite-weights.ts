/**
 * Weights holding NaN or ±Infinity are refused before a layer is quantized, naming the layer,
 * the weight and the count: min/max scales of an infinite weight are infinite and a NaN rounds
 * to an arbitrary code, so the model would be written, load, and compute garbage (found by a
 * user trial: exit 0 with Infinity scales in the output).
 *
 * The check rides on sums every plan already computes: S2's row norms (√Σ x² per input
 * channel, summed in float64). The squares of float32 values cannot overflow a float64 sum, so the sum is
 * non-finite exactly when a value is; only then is the weight scanned, for the message.
 */
import type { ReadBuffer } from '../../graph/ir/tensor.ts';
import { weightMatrixReadInto } from './layer-weights.ts';
import type { LinearLayer } from './linear-layers.ts';

/** How messages name a layer's weight: `layer <node>: weight <tensor>`. */
export function weightLabel(layer: LinearLayer): string {
  return `layer ${layer.name}: weight ${layer.weight.name}`;
}

/**
 * Throws naming `label` when the row-major `[K, N]` weight `w` holds non-finite values, told by
 * `total`, a sum over it that is non-finite exactly when a value is (Σ x², or the sum of its
 * rows' L2 norms); costs one comparison when it is finite.
 */
export function refuseNonFinite(total: number, w: Float32Array, N: number, label: string): void {
  if (Number.isFinite(total)) return;
  let nan = 0;
  let inf = 0;
  let first = -1;
  for (let i = 0; i < w.length; i++) {
    const v = w[i]!;
    // x - x is 0 for every finite x, NaN for NaN and ±Infinity.
    if (v - v === 0) continue;
    if (first < 0) first = i;
    if (Number.isNaN(v)) nan++;
    else inf++;
  }
  // A finite weight cannot give a non-finite sum (see above); the guard keeps the message honest.
  if (first < 0) return;
  const count = nan + inf;
  throw new Error(
    `${label} holds ${count} non-finite value${count === 1 ? '' : 's'} (${nan} NaN, ${inf} ±Infinity) of its ${w.length}, ` +
      `the first at input channel ${Math.floor(first / N)}, output channel ${first % N}; a weight to quantize must be finite (check the export or the checkpoint, or exclude the layer)`,
  );
}

/**
 * Checks every layer's weight before calibration runs: there a non-finite weight would first
 * show as a non-finite activation downstream, blamed on the calibration module's feeds, after
 * minutes of collection. Calibration reads every weight many times over, so one more read is
 * cheap there; runs without calibration rely on the check in the plan alone.
 */
export function refuseNonFiniteWeights(layers: readonly LinearLayer[]): void {
  const scratch: ReadBuffer = { bytes: new Uint8Array(0) };
  for (const layer of layers) {
    const w = weightMatrixReadInto(layer, scratch);
    let sum = 0;
    for (let i = 0; i < w.length; i++) sum += w[i]! * w[i]!;
    refuseNonFinite(sum, w, layer.N, weightLabel(layer));
  }
}
