/**
 * The float weights a quantized model multiplies by, and fp32 models with those weights
 * scaled toward or away from the originals (`error-scaling.ts` uses them).
 *
 * A weight-only model converted with `integer-kernels never` computes every quantized layer
 * as one float `MatMul` on a weight dequantized by constant nodes (Cast, Sub, Mul and, for a
 * split layer, Concat + Gather back into channel order; `src/passes/quant/emit.ts`
 * `floatWeight`), then an `Add` of the bias (with bias correction's shift folded in). So the
 * effective Ŵ of a layer is a value of that model, and onnxruntime computes it: the value is
 * made a graph output (calibration's `augmentModel`) and read from one run. Nothing about the
 * quantized formats (int4 storage, zero points, dual-scale branches) is re-implemented here.
 */
import * as ort from 'onnxruntime-node';
import type { Model } from '../../src/graph/ir/model.ts';
import type { Node } from '../../src/graph/ir/node.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { augmentModel } from '../../src/passes/calibration/augment.ts';
import { biasVector, weightMatrix } from '../../src/passes/quant/layer-weights.ts';
import { findLinearLayers, type LinearLayer } from '../../src/passes/quant/linear-layers.ts';

/** One linear layer of the fp32 model: its weight `[K, N]` and bias, and the quantized model's. */
export interface LayerWeights {
  name: string;
  K: number;
  N: number;
  w: Float32Array;
  b: Float32Array;
  wHat: Float32Array;
  bHat: Float32Array;
}

/**
 * A change of every layer's weight and bias: `W + s·dW`, `b + s·dB`. Float64, so that the
 * difference of two float32 values is exact and s = 1 gives back Ŵ to the bit.
 */
export interface LayerDelta {
  name: string;
  dW: Float64Array;
  dB: Float64Array;
}

/** The fp32 model's linear layers, each with a bias folded from an `Add` (what tiny-arvd and tiny-arvd-l have). */
function fp32Layers(model: Model): LinearLayer[] {
  const { layers } = findLinearLayers(model.graph);
  for (const l of layers) {
    if (l.op !== 'MatMul' || l.transposed || l.chain.length || l.alpha !== 1) throw new Error(`layer ${l.name}: only plain MatMul layers with an initializer weight are handled`);
    if (!l.bias?.addNode || l.bias.scale !== 1 || biasVector(l)?.length !== l.N) throw new Error(`layer ${l.name}: only layers with a bias Add of N values are handled`);
  }
  return layers;
}

/**
 * Reads Ŵ and b̂ of every linear layer of `fp32Path` from `quantPath`, a model converted with
 * `integer-kernels never` (every layer `<name>/qarvd/MatMul` on a float weight, then
 * `<name>/qarvd/Add` of the bias). `feeds`: any valid inputs of the model (one run computes
 * the weights; onnxruntime folds them into constants when the session is created anyway).
 */
export async function effectiveWeights(fp32Path: string, quantPath: string, feeds: Record<string, ort.Tensor>): Promise<LayerWeights[]> {
  const layers = fp32Layers(loadModel(fp32Path));
  const quant = loadModel(quantPath);
  const byName = new Map<string, Node>();
  for (const n of quant.graph) byName.set(n.name, n);
  const found = layers.map((l) => {
    const matmul = byName.get(`${l.name}/qarvd/MatMul`);
    if (!matmul || matmul.opType !== 'MatMul') throw new Error(`${quantPath}: no float MatMul ${l.name}/qarvd/MatMul (convert with --<pass>.integer-kernels never, weight-only)`);
    const uses = matmul.outputs[0]!.uses();
    const add = uses.length === 1 && uses[0]!.node.opType === 'Add' ? uses[0]!.node : undefined;
    const bias = add?.inputs.find((v) => v?.initializer);
    if (!add || !bias?.initializer) throw new Error(`${quantPath}: ${l.name}/qarvd/MatMul is not followed by an Add of a constant bias`);
    return { layer: l, weight: matmul.inputs[1]!, bHat: bias.initializer.toFloat32() };
  });
  const augmented = augmentModel(quant, found.map((f) => f.weight));
  try {
    const session = await ort.InferenceSession.create(augmented.path, { intraOpNumThreads: 1 });
    const out = (await session.run(feeds, augmented.outputNames)) as Record<string, ort.Tensor>;
    await session.release();
    return found.map(({ layer, bHat }, i) => {
      const wHat = out[augmented.outputNames[i]!]!.data as Float32Array;
      if (wHat.length !== layer.K * layer.N || bHat.length !== layer.N) throw new Error(`${quantPath}: layer ${layer.name} has a weight of ${wHat.length} values or a bias of ${bHat.length}; expected ${layer.K}×${layer.N}`);
      return { name: layer.name, K: layer.K, N: layer.N, w: weightMatrix(layer), b: biasVector(layer)!, wHat: Float32Array.from(wHat), bHat };
    });
  } finally {
    augmented.dispose();
  }
}

/** `Ŵ − W` and `b̂ − b` of every layer. */
export function deltasOf(layers: LayerWeights[]): LayerDelta[] {
  return layers.map((l) => ({ name: l.name, dW: Float64Array.from(l.wHat, (v, i) => v - l.w[i]!), dB: Float64Array.from(l.bHat, (v, i) => v - l.b[i]!) }));
}

/**
 * Writes `fp32Path` with every layer named in `deltas` changed to `W + s·dW`, `b + s·dB`
 * (computed in float64, stored as float32); the graph is otherwise the fp32 model's, so
 * onnxruntime runs it exactly as it runs fp32.
 */
export function writeScaledModel(fp32Path: string, deltas: LayerDelta[], s: number, outPath: string): void {
  const model = loadModel(fp32Path);
  const layers = new Map(fp32Layers(model).map((l) => [l.name, l]));
  for (const d of deltas) {
    const l = layers.get(d.name);
    if (!l) throw new Error(`${fp32Path}: no linear layer ${d.name}`);
    const w = weightMatrix(l);
    const b = biasVector(l)!;
    if (d.dW.length !== w.length || d.dB.length !== b.length) throw new Error(`layer ${d.name}: delta of ${d.dW.length}/${d.dB.length} values for a ${l.K}×${l.N} layer`);
    l.weight.setBytes(new Uint8Array(w.map((v, i) => v + s * d.dW[i]!).buffer));
    l.bias!.tensor.setBytes(new Uint8Array(b.map((v, i) => v + s * d.dB[i]!).buffer));
  }
  saveModel(model, outPath);
}
