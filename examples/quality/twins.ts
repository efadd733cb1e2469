/**
 * Twins of a model, to measure how much of a final-video difference is the rollout's chaos.
 *
 * A twin is the model with every float initializer except the quantization parameters moved by one
 * ulp, up or down at random (seeded): the same function to float rounding — the integer weights,
 * their scales and zero points, the graph are untouched. An autoregressive rollout amplifies
 * such differences chunk by chunk; on tiny-arvd-l at W8A8 two twins of one model scored 0.64×
 * and 0.32× its final-video MSE over 16 prompts while their one-step errors moved by under 0.5%
 * (docs/split-check.md). Two rows of the quality table whose ratio lies within their twins'
 * spread are not told apart by that table.
 */
import type { Model } from '../../src/graph/ir/model.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';

/**
 * Per operator, the inputs that are quantization parameters (scales and zero points): what a
 * twin keeps, since moving a scale moves every integer weight's value. Found by the graph,
 * not by names (onnxruntime's own quantizers name them `…_scales`, deduplicated names get a suffix).
 */
const QUANTIZATION_PARAMETERS: Record<string, readonly number[]> = {
  QuantizeLinear: [1, 2],
  DequantizeLinear: [1, 2],
  DynamicQuantizeMatMul: [2, 3],
  MatMulIntegerToFloat: [2, 3, 4, 5],
  MatMulNBits: [2, 3],
  GatherBlockQuantized: [2, 3],
  QLinearMatMul: [1, 2, 4, 5, 6, 7],
  QLinearConv: [1, 2, 4, 5, 6, 7],
};

/** Names of the initializers a twin leaves alone: quantization parameters (above) and scalars (shape constants, epsilons). */
export function keptByTwin(model: Model): Set<string> {
  const kept = new Set<string>();
  for (const node of model.graph.nodes()) {
    const inputs = node.inputs;
    for (const i of QUANTIZATION_PARAMETERS[node.opType] ?? []) {
      const v = inputs[i];
      if (v?.initializer) kept.add(v.name);
    }
  }
  for (const [name, v] of model.graph.initializers) if (v.initializer!.size < 2) kept.add(name);
  return kept;
}

/**
 * Writes a twin of the model at `source` to `target` (one file, or external data beside it as the saver decides).
 * @param seed the twin's number: which ulp moves up and which down (the same seed, the same twin)
 * @returns how many initializers were moved
 */
export function writeTwin(source: string, target: string, seed: number): { moved: number } {
  const model = loadModel(source);
  const kept = keptByTwin(model);
  const random = seededRandom(seed);
  let moved = 0;
  for (const value of model.graph.initializers.values()) {
    const tensor = value.initializer!;
    if (tensor.dataType !== DataType.FLOAT || kept.has(value.name)) continue;
    const data = new Float32Array(tensor.toFloat32());
    const bits = new Int32Array(data.buffer);
    // One ulp in the value's own binade: ±1 on the bit pattern of a finite non-zero float (a zero, either sign, stays: a structural zero, a padding).
    for (let i = 0; i < data.length; i++) if (data[i] !== 0 && Number.isFinite(data[i]!)) bits[i]! += random.next() < 0.5 ? 1 : -1;
    value.initializer = Tensor.fromFloat32(tensor.name, tensor.dims, data);
    moved++;
  }
  saveModel(model, target);
  return { moved };
}
