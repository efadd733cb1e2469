import { attr } from '../../graph/ir/attribute.ts';
import { DataType } from '../../graph/ir/dtype.ts';
import type { Graph } from '../../graph/ir/graph.ts';
import { Tensor } from '../../graph/ir/tensor.ts';
import type { Value } from '../../graph/ir/value.ts';
import type { QuantConfig } from './config.ts';
import { LayerBuilder } from './builder.ts';
import { biasVector } from './layer-weights.ts';
import { nbitsBlockSize, toMatMulNBits } from './nbits.ts';
import { quantRange } from '../../kernels/quantize.ts';
import type { Branch, LayerPlan } from './plan.ts';

/** Quantized weights already emitted, keyed by weight and branch, so a shared weight is stored once. */
export type WeightCache = Map<string, Value[]>;

/**
 * Emits the quantized form of one layer (METHOD.md "Mapping to ONNX"):
 * - per branch, `Gather(X, idx, axis=-1)` when the layer is split;
 * - `qdq`: [Clip →] QuantizeLinear → DequantizeLinear on the activation (scalar scale and
 *   zero point, one Q per branch), `DequantizeLinear(Wq, s[N], z[N], axis=1)`, `MatMul`;
 * - `qoperator`: [Clip →] QuantizeLinear, then `com.microsoft.MatMulIntegerToFloat` with the
 *   bias on the first branch;
 * - weight-only (`aBits` null): no activation quantizer; `qdq` feeds the weight DQ to the
 *   MatMul, `qoperator` emits `com.microsoft.MatMulNBits` (fp32 activations unless the
 *   session asks otherwise — onnxruntime's own DQ→MatMul fusion picks int8 activations);
 * - branches and the bias joined with `Add`.
 * Returns the builder holding the new nodes and the value that replaces the layer's output.
 */
export function emitLayer(plan: LayerPlan, config: QuantConfig, graph: Graph, cache: WeightCache, opset?: number): { builder: LayerBuilder; output: Value } {
  const { layer } = plan;
  const b = new LayerBuilder(graph, `${layer.name}/qarvd`, layer.name);
  b.opset = opset;
  const stored = biasVector(layer);
  if (!stored && layer.bias) throw new Error(`layer ${layer.name}: bias of shape [${layer.bias.tensor.dims.join('x')}] cannot be folded`);
  const bias = withShift(stored, plan.biasShift);
  const useIntegerOp = config.format === 'qoperator' && config.aBits !== null;
  const useNBits = config.format === 'qoperator' && config.aBits === null;
  let out: Value | undefined;
  plan.branches.forEach((br, i) => {
    const tag = br.role === 'all' ? '' : `${br.role}/`;
    // Read X from the node now: an earlier rewrite may have replaced the value it had at discovery.
    let x = layer.node.input(0)!;
    if (br.indices) x = b.node('Gather', [x, b.indices(`${tag}channels`, br.indices)], { attributes: [attr.int('axis', -1)], tag: `${tag}Gather` });
    let y: Value;
    if (useIntegerOp) {
      const { xq, scale, zeroPoint } = quantizeActivation(b, br, x, config, tag);
      const [wq, ws, wz] = cachedWeights(plan, br, config, b, cache, false);
      const inputs = [xq, wq!, scale, ws!, zeroPoint, wz!];
      // MatMulIntegerToFloat adds a 1-D bias itself; it goes on the first branch only.
      if (i === 0 && bias) inputs.push(b.vectorF32('bias', bias));
      y = b.node('MatMulIntegerToFloat', inputs, { domain: 'com.microsoft', tag: `${tag}MatMulIntegerToFloat` });
    } else if (useNBits) {
      const [wb, ws, wz] = cachedNBits(plan, br, b, cache);
      const attributes = [attr.int('K', br.K), attr.int('N', layer.N), attr.int('bits', quantRange(br.wType).bits), attr.int('block_size', br.blockSize ?? nbitsBlockSize(br.K))];
      y = b.node('MatMulNBits', [x, wb!, ws!, wz!], { domain: 'com.microsoft', attributes, tag: `${tag}MatMulNBits` });
    } else {
      if (br.act) {
        // Q and DQ share one scale and zero point initializer: the pair onnxruntime fuses.
        const { xq, scale, zeroPoint } = quantizeActivation(b, br, x, config, tag);
        x = b.node('DequantizeLinear', [xq, scale, zeroPoint], { domain: config.qdqDomain, tag: `${tag}DequantizeLinear` });
      }
      const [wdq] = cachedWeights(plan, br, config, b, cache, true);
      y = b.node('MatMul', [x, wdq!], { tag: `${tag}MatMul` });
    }
    out = out ? b.node('Add', [out, y], { tag: 'Add' }) : y;
  });
  if (bias && !useIntegerOp) out = b.node('Add', [out!, b.vectorF32('bias', bias)], { tag: 'bias/Add' });
  return { builder: b, output: out! };
}

/** The bias plus bias correction's shift (float32 sums); the shift alone when there is no bias. */
function withShift(bias: Float32Array | undefined, shift: Float32Array | undefined): Float32Array | undefined {
  if (!shift) return bias;
  return bias ? bias.map((v, n) => v + shift[n]!) : Float32Array.from(shift);
}

/** The MatMulNBits operands of a branch (B, scales, zero points), stored once per shared weight. */
function cachedNBits(plan: LayerPlan, br: Branch, b: LayerBuilder, cache: WeightCache): Value[] {
  const key = `${plan.layer.weightValue.name}|${br.role}|nbits`;
  const hit = cache.get(key);
  if (hit) return hit;
  const tag = br.role === 'all' ? '' : `${br.role}/`;
  const w = toMatMulNBits(br.wq, br.K, plan.layer.N, br.wScales, br.wZeroPoints, br.wType, br.blockSize);
  const values = [
    b.constant(`${tag}weight_nbits`, (n) => Tensor.fromBytes(n, DataType.UINT8, w.bDims, w.b)),
    b.vectorF32(`${tag}weight_scale`, w.scales),
    b.constant(`${tag}weight_zero_point`, (n) => Tensor.fromBytes(n, DataType.UINT8, [w.zeroPoints.length], w.zeroPoints)),
  ];
  cache.set(key, values);
  return values;
}

function quantizeActivation(b: LayerBuilder, br: Branch, x: Value, config: QuantConfig, tag: string): { xq: Value; scale: Value; zeroPoint: Value } {
  // QuantizeLinear entered the default domain at opset 10; below that onnxruntime's own
  // com.microsoft QuantizeLinear does the same arithmetic.
  const domain = config.qdqDomain === '' && (b.opset ?? 21) < 10 ? 'com.microsoft' : config.qdqDomain;
  const a = br.act;
  if (!a) throw new Error('internal: branch without an activation quantizer');
  if (a.clip) x = b.node('Clip', [x, b.scalarF32(`${tag}clip_min`, a.clip[0]), b.scalarF32(`${tag}clip_max`, a.clip[1])], { tag: `${tag}Clip` });
  const scale = b.scalarF32(`${tag}x_scale`, a.scale);
  const zeroPoint = b.quantized(`${tag}x_zero_point`, a.type, [], [a.zeroPoint]);
  return { xq: b.node('QuantizeLinear', [x, scale, zeroPoint], { domain, tag: `${tag}QuantizeLinear` }), scale, zeroPoint };
}

/**
 * The weight of a branch: for Q/DQ the DequantizeLinear output; for the integer op the
 * quantized weight, its scales and zero points (int4 values travel in int8 there, since
 * MatMulIntegerToFloat takes 8-bit B only).
 */
function cachedWeights(plan: LayerPlan, br: Branch, config: QuantConfig, b: LayerBuilder, cache: WeightCache, dq: boolean): Value[] {
  const key = `${plan.layer.weightValue.name}|${br.role}|${dq}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const N = plan.layer.N;
  const tag = br.role === 'all' ? '' : `${br.role}/`;
  const storage = dq || br.wType === 'uint8' ? br.wType : 'int8';
  const wq = b.quantized(`${tag}weight_quantized`, storage, [br.K, N], br.wq);
  // Per output channel: scales [N] on axis 1. Blocked (opset 21): [blocks, N] on axis 0 with block_size.
  const paramDims = br.blockSize ? [br.wScales.length / N, N] : [N];
  const ws = br.blockSize ? b.constant(`${tag}weight_scale`, (n) => Tensor.fromBytes(n, DataType.FLOAT, paramDims, new Uint8Array(br.wScales.buffer, br.wScales.byteOffset, br.wScales.byteLength))) : b.vectorF32(`${tag}weight_scale`, br.wScales);
  const wz = b.quantized(`${tag}weight_zero_point`, storage, paramDims, br.wZeroPoints);
  const attributes = br.blockSize ? [attr.int('axis', 0), attr.int('block_size', br.blockSize)] : [attr.int('axis', 1)];
  const values = dq ? [b.node('DequantizeLinear', [wq, ws, wz], { domain: config.qdqDomain, attributes, tag: `${tag}weight/DequantizeLinear` })] : [wq, ws, wz];
  cache.set(key, values);
  return values;
}
