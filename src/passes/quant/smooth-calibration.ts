import type { Model } from '../../graph/ir/model.ts';
import { withModelCopy } from '../../graph/serde/model-copy.ts';
import { calibrate } from '../calibration/calibrate.ts';
import type { LoadedCalibration } from '../calibration/module.ts';
import type { Logger } from '../log.ts';
import type { QuantConfig } from './config.ts';
import { findLinearLayers, type LayerSelection, type LinearLayer } from './linear-layers.ts';
import { applySmoothing, type Smoothing, smoothingFactors } from './smooth.ts';

/**
 * The smooth-quant step before calibration: a min/max pass of the calibration samples over
 * the original model gives per-channel activation ranges, hence the factors. Then `fn`
 * calibrates a smoothed copy (see {@link withModelCopy}): the user's model
 * is only rewritten by the caller once everything has succeeded, so a failing calibration
 * leaves it as it was.
 */
export async function withSmoothedCopy<T>(
  model: Model,
  layers: LinearLayer[],
  calib: LoadedCalibration,
  config: QuantConfig,
  options: { selection: LayerSelection; alpha: number; threads?: number; log: Logger },
  fn: (copy: Model, layers: LinearLayer[]) => Promise<T>,
): Promise<{ smoothing: Smoothing; result: T }> {
  const pre = await calibrate(model, layers, calib, config, { selection: options.selection, scaleSearch: false, threads: options.threads });
  const smoothing = smoothingFactors(layers, pre.ranges, options.alpha);
  const smoothed = smoothing.groups.reduce((n, g) => n + g.layers.length, 0);
  options.log.info(`smooth-quant α ${options.alpha}: ${smoothing.groups.length} layer input(s) smoothed, ${smoothed} of ${layers.length} layers (min/max pass over ${calib.samples} sample(s) in ${(pre.timings.collect / 1000).toFixed(1)} s)`);
  const result = await withModelCopy(model, 'qarvd-smooth-', async (copy) => {
    const { folded, inserted } = applySmoothing(copy, findLinearLayers(copy.graph, options.selection).layers, smoothing, 'smooth-quant');
    options.log.info(`smooth-quant: 1/s folded into ${folded} producer(s) (LayerNormalization, Mul by a constant), ${inserted} Mul node(s) inserted`);
    // The layers again: they now read the smoothed inputs and weights.
    return fn(copy, findLinearLayers(copy.graph, options.selection).layers);
  });
  return { smoothing, result };
}
