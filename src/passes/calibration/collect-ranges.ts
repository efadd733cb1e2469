import type { Model } from '../../graph/ir/model.ts';
import type { LinearLayer } from '../quant/linear-layers.ts';
import type { ActivationRanges } from '../quant/quantize-layers.ts';
import { collectStatistics, openCalibrationSession, rangesOf } from './collect.ts';
import type { LoadedCalibration } from './module.ts';

export { contextFor, drawSample } from './samples.ts';

/** Progress callback: samples done of total. */
export type Progress = (done: number, total: number) => void;

/**
 * Per-channel activation ranges only (no reservoirs, no search): runs the model with the
 * layer inputs as extra outputs in onnxruntime-node over the module's feeds or rollouts and
 * returns each layer's per-input-channel min/max over all chunks.
 */
export async function collectActivationRanges(model: Model, layers: LinearLayer[], calib: LoadedCalibration, progress?: Progress, threads = 0): Promise<ActivationRanges> {
  const session = await openCalibrationSession(model, layers, calib, threads);
  try {
    const stats = await collectStatistics(session, layers, { reservoirRows: 0, progress: (p) => progress?.(p.done, p.total) });
    return rangesOf(stats, layers);
  } finally {
    await session.dispose();
  }
}
