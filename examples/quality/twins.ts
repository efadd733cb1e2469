/**
 * Twins of a model, to measure how much of a final-video difference is the rollout's chaos.
 *
 * A twin is the model with every float initializer except the quantization scales moved by one
 * ulp, up or down at random (seeded): the same function to float rounding — the integer weights,
 * their scales and zero points, the graph are untouched. An autoregressive rollout amplifies
 * such differences chunk by chunk; on tiny-arvd-l at W8A8 two twins of one model scored 0.64×
 * and 0.32× its final-video MSE over 16 prompts while their one-step errors moved by under 0.5%
 * (docs/split-check.md). Two rows of the quality table whose ratio lies within their twins'
 * spread are not told apart by that table.
 */
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { seededRandom } from '../../src/kernels/random.ts';

/** Initializers a twin leaves alone: quantization scales (`…scale`: moving them would move every integer weight's value) and scalars (shape constants, epsilons). */
export function keptByTwin(name: string, size: number): boolean {
  return size < 2 || /scale$/i.test(name);
}

/**
 * Writes the twin `seed` of the model at `source` to `target` (one file, or external data beside it as the saver decides).
 * @returns how many initializers were moved
 */
export function writeTwin(source: string, target: string, seed: number): { moved: number } {
  const model = loadModel(source);
  const random = seededRandom(seed);
  let moved = 0;
  for (const value of model.graph.initializers.values()) {
    const tensor = value.initializer!;
    if (tensor.dataType !== DataType.FLOAT || keptByTwin(value.name, tensor.size)) continue;
    const data = new Float32Array(tensor.toFloat32());
    const bits = new Int32Array(data.buffer);
    // One ulp in the value's own binade: ±1 on the bit pattern of a finite non-zero float (a zero stays zero: a structural zero, a padding).
    for (let i = 0; i < data.length; i++) if (data[i] !== 0 && Number.isFinite(data[i]!)) bits[i]! += random.next() < 0.5 ? 1 : -1;
    value.initializer = Tensor.fromFloat32(tensor.name, tensor.dims, data);
    moved++;
  }
  saveModel(model, target);
  return { moved };
}
