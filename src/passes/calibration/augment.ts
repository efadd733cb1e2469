import { join } from 'node:path';
import type { Model } from '../../graph/ir/model.ts';
import type { Value } from '../../graph/ir/value.ts';
import { saveModel } from '../../graph/serde/io.ts';
import { makeProcessTempDir } from '../../graph/serde/stale-temps.ts';
import { trackTemp } from '../../graph/serde/temp-files.ts';

/** A model file with extra graph outputs, and the output names that observe each value. */
export interface AugmentedModel {
  path: string;
  /** Graph output name for each observed value, in the order given. */
  outputNames: string[];
  dispose(): void;
}

/**
 * Augment step of calibration: writes a copy of the model whose graph also outputs the
 * given values (the inputs of the layers to calibrate). The values are found through the
 * IR, so names are never parsed; the model itself is left exactly as it was.
 */
export function augmentModel(model: Model, observe: Value[]): AugmentedModel {
  const g = model.graph;
  const before = g.outputs.length;
  const added = [...new Set(observe)].filter((v) => !v.isGraphOutput());
  for (const v of added) g.addOutput(v);
  const dir = makeProcessTempDir('qarvd-calib-');
  const remove = trackTemp(dir);
  const path = join(dir, 'augmented.onnx');
  try {
    saveModel(model, path, { externalData: 'auto' });
  } catch (e) {
    remove();
    throw e;
  } finally {
    for (let i = g.outputs.length - 1; i >= before; i--) g.removeOutput(i);
  }
  return { path, outputNames: observe.map((v) => v.name), dispose: remove };
}
