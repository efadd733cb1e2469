import { attr } from '../../graph/ir/attribute.ts';
import { DataType } from '../../graph/ir/dtype.ts';
import type { Graph } from '../../graph/ir/graph.ts';
import { grownTo, type ReadBuffer, Tensor } from '../../graph/ir/tensor.ts';
import type { Value } from '../../graph/ir/value.ts';
import type { QuantConfig } from './config.ts';
import { LayerBuilder } from './builder.ts';
import { biasVector } from './layer-weights.ts';
import { toMatMulNBits } from './nbits.ts';
import { quantRange, type QuantType } from '../../kernels/quantize.ts';
import { branchForm, nbitsBlockSize } from './forms.ts';
import type { Branch, LayerPlan } from './plan.ts';

/** Quantized weights already emitted, keyed by weight and branch, so a shared weight is stored once. */
export type WeightCache = Map<string, Value[]>;

/**
 * Emits the quantized form of one layer (METHOD.md "Mapping to ONNX"; the op per format and
 * bits is {@link branchForm}'s, docs/speed.md says why):
 * - a split layer's outlier branch reads its channels of X ({@link readChannels}); its normal branch reads
 *   all of X when the outliers are few (≤ K/4), its weight holding the outlier rows as zero
 *   points (they dequantize to exactly 0, so the product is the normal channels' alone) — no
 *   copy of 98% of the activation. Otherwise, and for blocked weights (their blocks run over
 *   the branch's own rows), the normal branch gathers its channels too;
 * - `qdq`: [Clip →] QuantizeLinear → DequantizeLinear on the activation (scalar scale and
 *   zero point), `DequantizeLinear(Wq, s, z)`, `MatMul`;
 * - `qoperator`: MatMulIntegerToFloat or MatMulNBits, the bias inside the first branch's op;
 * - 8-bit weight-only with `w8-kernel dynamic`: DynamicQuantizeMatMul (qoperator) or its ONNX
 *   chain ({@link dynamicChain}, qdq), the bias inside the first branch, Adds joining;
 * - branches and the bias are joined by one `Sum` in `qdq` (an `Add` right after a MatMul is
 *   turned into a float Gemm by onnxruntime's MatMulAddFusion before its QDQ fusions run,
 *   which would dequantize the weight on every call), by `Add` after the com.microsoft ops.
 * A layer the small-layer rule keeps in float compute (`plan.floatCompute`, small-layers.ts)
 * is one float MatMul whose weight is {@link floatWeight}'s.
 * Returns the builder holding the new nodes and the value that replaces the layer's output.
 */
export function emitLayer(plan: LayerPlan, config: QuantConfig, graph: Graph, cache: WeightCache, opset?: number, scratch?: ReadBuffer): { builder: LayerBuilder; output: Value } {
  const { layer } = plan;
  const b = new LayerBuilder(graph, `${layer.name}/qarvd`, layer.name);
  b.opset = opset;
  const stored = biasVector(layer);
  if (!stored && layer.bias) throw new Error(`layer ${layer.name}: bias of shape [${layer.bias.tensor.dims.join('x')}] cannot be folded`);
  let bias: Value | undefined;
  const biasValue = () => (bias ??= b.vectorF32('bias', withShift(stored, plan.biasShift)!));
  const hasBias = Boolean(stored || plan.biasShift);
  if (plan.floatCompute) {
    // One float MatMul (+ Add: onnxruntime makes it the same Gemm as fp32's) on the weight
    // dequantized by constants, which onnxruntime folds when it loads the model.
    const y = b.node('MatMul', [layer.node.input(0)!, floatWeight(plan, b, cache)], { tag: 'MatMul' });
    return { builder: b, output: hasBias ? b.node('Add', [y, biasValue()], { tag: 'Add' }) : y };
  }
  const form = branchForm(config, opset);
  const terms: Value[] = [];
  let biasInside = false;
  plan.branches.forEach((planned) => {
    // Also in the dynamic form, whose run-time quantizer then takes the normal branch's range over
    // all channels, the outliers' too (as minmax's does): gathering 98% of the channels instead
    // made q-arvd 1.5–1.6× slower than minmax at 256 rows on the Wan block (docs/w8-weight-only.md).
    const br = readsAllRows(planned, layer.K) ? widenNormal(planned, layer.K, layer.N, scratch) : planned;
    const tag = br.role === 'all' ? '' : `${br.role}/`;
    // Read X from the node now: an earlier rewrite may have replaced the value it had at discovery.
    let x = layer.node.input(0)!;
    if (br.indices) x = readChannels(b, x, br.indices, tag, inputRank(layer));
    // The com.microsoft ops add a 1-D bias themselves: it goes into the first branch.
    const takeBias = hasBias && !biasInside && form.op !== 'qdq';
    let y: Value;
    if (form.op === 'dynamic') {
      const [wq, ws, wz] = cachedWeights(plan, br, config, b, cache, 'integer');
      y = form.qdq ? dynamicChain(b, x, wq!, ws!, wz!, takeBias ? biasValue() : undefined, tag) : b.node('DynamicQuantizeMatMul', [x, wq!, ws!, wz!, ...(takeBias ? [biasValue()] : [])], { domain: 'com.microsoft', tag: `${tag}DynamicQuantizeMatMul` });
    } else if (form.op === 'integer') {
      const { xq, scale, zeroPoint } = quantizeActivation(b, br, x, config, tag);
      const [wq, ws, wz] = cachedWeights(plan, br, config, b, cache, 'integer');
      y = b.node('MatMulIntegerToFloat', [xq, wq!, scale, ws!, zeroPoint, wz!, ...(takeBias ? [biasValue()] : [])], { domain: 'com.microsoft', tag: `${tag}MatMulIntegerToFloat` });
    } else if (form.op === 'nbits') {
      // W4A8 / W4A6 (w4a8-kernel nbits): the activation fake-quantized by its static quantizer first.
      if (br.act) x = fakeQuantize(b, br, x, config, tag);
      const [wb, ws, wz] = cachedNBits(plan, br, b, cache);
      // int7 (reduce-range) travels as 8 bits. Level 4: int8 compute (forms.ts).
      const bits = quantRange(br.wType).bits <= 4 ? 4 : 8;
      const attributes = [attr.int('K', br.K), attr.int('N', layer.N), attr.int('bits', bits), attr.int('block_size', br.blockSize ?? nbitsBlockSize(br.K)), attr.int('accuracy_level', 4)];
      y = b.node('MatMulNBits', [x, wb!, ws!, wz!, ...(takeBias ? [null, biasValue()] : [])], { domain: 'com.microsoft', attributes, tag: `${tag}MatMulNBits` });
    } else {
      if (br.act) x = fakeQuantize(b, br, x, config, tag);
      const [wdq] = cachedWeights(plan, br, config, b, cache, form.int8Storage ? 'dq-int8' : form.nbitsBlocks ? 'dq-nbits' : 'dq');
      y = b.node('MatMul', [x, wdq!], { tag: `${tag}MatMul` });
    }
    biasInside ||= takeBias;
    terms.push(y);
  });
  if (hasBias && !biasInside) terms.push(biasValue());
  return { builder: b, output: join(b, terms, form.op === 'qdq') };
}

/**
 * The ONNX-standard form of DynamicQuantizeMatMul, the chain onnxruntime's own
 * `quantize_dynamic` writes: `DynamicQuantizeLinear(x) → MatMulInteger(x_q, W, x_zp, w_zp) →
 * Cast(float) → Mul(·, Mul(x_scale, w_scale))`, the bias (when given) added right after.
 * onnxruntime's MatMulIntegerToFloatFusion takes the chain and the bias Add into
 * MatMulIntegerToFloat, and DynamicQuantizeMatMulFusion that and the DynamicQuantizeLinear
 * (all three of its outputs used by this chain alone) into DynamicQuantizeMatMul. The operand
 * order of the scale Mul matters: the fusions read x's scale first.
 */
function dynamicChain(b: LayerBuilder, x: Value, wq: Value, ws: Value, wz: Value, bias: Value | undefined, tag: string): Value {
  const dql = b.nodeOutputs('DynamicQuantizeLinear', [x], 3, { tag: `${tag}DynamicQuantizeLinear` });
  const [xq, xScale, xZero] = dql as [Value, Value, Value];
  const acc = b.node('MatMulInteger', [xq, wq, xZero, wz], { tag: `${tag}MatMulInteger` });
  const float = b.node('Cast', [acc], { attributes: [attr.int('to', DataType.FLOAT)], tag: `${tag}Cast` });
  const scale = b.node('Mul', [xScale, ws], { tag: `${tag}scale/Mul` });
  const y = b.node('Mul', [float, scale], { tag: `${tag}Mul` });
  return bias ? b.node('Add', [y, bias], { tag: `${tag}bias/Add` }) : y;
}

/**
 * The input channels `indices` (ascending) of X, on its last axis: a `Slice` when they are
 * contiguous, else `Gather`. Same values; onnxruntime's CPU Gather on the last axis makes one
 * copy call per element (1560 rows × 192 of Wan's ffn.2 channels: 5.3 ms in the model, against
 * 0.23 ms for a Slice of as many; docs/dual-scale-speed.md). Contiguous outlier channels are
 * what a producer whose output columns were permuted would hand over.
 *
 * The Slice's form follows the opset (ONNX Changelog.md): from 11 its `axes` input may be
 * negative (-1); Slice-10 takes `axes` as an input but documents no negative values, and
 * Slice-1 (opsets 1–9) takes `starts`, `ends`, `axes` as attributes, also without negative
 * axes. So below 11 the last axis is written as `rank − 1`, which needs X's rank; when it is
 * unknown the read is a Gather, whose `axis` may be negative from Gather-1 on.
 */
function readChannels(b: LayerBuilder, x: Value, indices: Int32Array, tag: string, rank: number | undefined): Value {
  const first = indices[0]!;
  const opset = b.opset ?? 21;
  const axis = opset >= 11 ? -1 : rank !== undefined ? rank - 1 : undefined;
  if (axis !== undefined && indices.every((k, i) => k === first + i)) {
    const end = first + indices.length;
    if (opset < 10) return b.node('Slice', [x], { attributes: [attr.ints('starts', [first]), attr.ints('ends', [end]), attr.ints('axes', [axis])], tag: `${tag}Slice` });
    const int64 = (t: string, v: number) => b.constant(`${tag}${t}`, (n) => Tensor.fromBytes(n, DataType.INT64, [1], new Uint8Array(BigInt64Array.of(BigInt(v)).buffer)));
    return b.node('Slice', [x, int64('channels_start', first), int64('channels_end', end), int64('channels_axis', axis)], { tag: `${tag}Slice` });
  }
  return b.node('Gather', [x, b.indices(`${tag}channels`, indices)], { attributes: [attr.int('axis', -1)], tag: `${tag}Gather` });
}

/** The rank of the layer's input X when known: 2 for Gemm (its A is a matrix), else from X's declared type. */
function inputRank(layer: LayerPlan['layer']): number | undefined {
  return layer.op === 'Gemm' ? 2 : layer.input.shape()?.length;
}

/** Joins branch outputs and the bias: one Sum after MatMuls (see {@link emitLayer}), Adds after the com.microsoft ops. */
function join(b: LayerBuilder, terms: Value[], afterMatMul: boolean): Value {
  if (terms.length === 1) return terms[0]!;
  // Sum broadcasts from opset 8; below it the 1-D bias needs Add's (legacy) broadcasting rules anyway.
  if (afterMatMul && (b.opset ?? 21) >= 8) return b.node('Sum', terms, { tag: 'Sum' });
  return terms.slice(1).reduce((acc, t) => b.node('Add', [acc, t], { tag: 'Add' }), terms[0]!);
}

/**
 * True for the normal branch of a per-channel split whose outliers are at most 1/4 of the K
 * channels: it reads all of X (see {@link widenNormal}) at the price of that many more weight
 * rows. Measured on tiny-arvd-l (K 192 and 768, 32 outliers each): q-arvd W8A8 went from 1.33×
 * fp32's latency with two Gathers per split to 0.88× with one. Splits with more outliers
 * (K = 64 with align 32: half the channels) keep the Gather: their weights would grow by half.
 */
function readsAllRows(br: Branch, K: number): boolean {
  return br.role === 'normal' && br.blockSize === undefined && (K - br.K) * 4 <= K;
}

/**
 * The normal branch over all K input channels: its quantized rows at their channels, the
 * outlier channels' rows set to each column's zero point, which dequantizes to exactly 0.
 * The integer product is then the normal channels' alone (integer kernels accumulate exactly),
 * and the layer reads X without a Gather.
 */
function widenNormal(br: Branch, K: number, N: number, scratch?: ReadBuffer): Branch {
  // In `scratch` when given: the caller spills the layer's tensors before the next layer reuses it.
  const buffer = scratch ? grownTo(scratch, K * N).buffer : new ArrayBuffer(K * N);
  const wq = br.wq instanceof Int8Array ? new Int8Array(buffer, 0, K * N) : new Uint8Array(buffer, 0, K * N);
  const zeroRow = br.wq instanceof Int8Array ? Int8Array.from(br.wZeroPoints.subarray(0, N)) : Uint8Array.from(br.wZeroPoints.subarray(0, N));
  // The branch's rows at their channels, the zero-point row at the others (the outliers).
  let next = 0;
  br.indices!.forEach((k, i) => {
    for (; next < k; next++) wq.set(zeroRow, next * N);
    wq.set(br.wq.subarray(i * N, (i + 1) * N), k * N);
    next = k + 1;
  });
  for (; next < K; next++) wq.set(zeroRow, next * N);
  const { indices: _, ...rest } = br;
  return { ...rest, K, wq };
}

/**
 * The layer's dequantized weight `[K, N]` as constant-only nodes: per branch
 * `Cast(Wq → float) [→ Sub(zero points)] → Mul(scales)` (the arithmetic of DequantizeLinear,
 * which onnxruntime would instead fuse into MatMulNBits, or leave unfolded), the branches of a
 * split stacked by `Concat` and put back in channel order by a `Gather` on axis 0. onnxruntime's
 * constant folding turns it into one float initializer when the session is created: the file
 * keeps the quantized weights (4-bit values as int4 from opset 21, else int8), the runtime
 * multiplies in float. Stored once per shared weight.
 */
function floatWeight(plan: LayerPlan, b: LayerBuilder, cache: WeightCache): Value {
  const key = `${plan.layer.weightValue.name}|float`;
  const hit = cache.get(key);
  if (hit) return hit[0]!;
  const N = plan.layer.N;
  const int4 = (b.opset ?? 21) >= 21;
  const parts = plan.branches.map((br) => {
    const tag = br.role === 'all' ? '' : `${br.role}/`;
    const wide = br.wType === 'int4' || br.wType === 'uint4';
    const storage: QuantType = br.wType === 'int7' || (wide && !int4) ? (br.wType === 'uint4' ? 'uint8' : 'int8') : br.wType;
    const toFloat = (v: Value, t: string) => b.node('Cast', [v], { attributes: [attr.int('to', DataType.FLOAT)], tag: `${tag}${t}/Cast` });
    let w = toFloat(b.quantized(`${tag}weight_quantized`, storage, [br.K, N], br.wq), 'weight');
    // Zero points in the weight's own type (half a byte each at 4 bits), cast like the weight.
    const zp = br.wZeroPoints.subarray(0, N);
    if (zp.some((z) => z !== 0)) w = b.node('Sub', [w, toFloat(b.quantized(`${tag}weight_zero_point`, storage, [N], zp), 'weight_zero_point')], { tag: `${tag}weight/Sub` });
    return b.node('Mul', [w, b.vectorF32(`${tag}weight_scale`, br.wScales.slice(0, N))], { tag: `${tag}weight/Mul` });
  });
  let w = parts[0]!;
  if (parts.length > 1) {
    // Row i of the stack is channel order[i]; channel k is row position[k].
    const order = plan.branches.flatMap((br) => [...br.indices!]);
    const position = new Int32Array(order.length);
    order.forEach((k, i) => (position[k] = i));
    const stacked = b.node('Concat', parts, { attributes: [attr.int('axis', 0)], tag: 'weight/Concat' });
    const order32 = b.constant('weight/channel_order', (n) => Tensor.fromBytes(n, DataType.INT32, [position.length], new Uint8Array(position.buffer)));
    w = b.node('Gather', [stacked, order32], { attributes: [attr.int('axis', 0)], tag: 'weight/Gather' });
  }
  cache.set(key, [w]);
  return w;
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
  const domain = qDomain(b, config);
  const a = br.act;
  if (!a) throw new Error('internal: branch without an activation quantizer');
  if (a.clip) x = b.node('Clip', [x, b.scalarF32(`${tag}clip_min`, a.clip[0]), b.scalarF32(`${tag}clip_max`, a.clip[1])], { tag: `${tag}Clip` });
  const scale = b.scalarF32(`${tag}x_scale`, a.scale);
  const zeroPoint = b.quantized(`${tag}x_zero_point`, a.type, [], [a.zeroPoint]);
  return { xq: b.node('QuantizeLinear', [x, scale, zeroPoint], { domain, tag: `${tag}QuantizeLinear` }), scale, zeroPoint };
}

/** [Clip →] QuantizeLinear → DequantizeLinear sharing one scale and zero point: the pair onnxruntime fuses. */
function fakeQuantize(b: LayerBuilder, br: Branch, x: Value, config: QuantConfig, tag: string): Value {
  const { xq, scale, zeroPoint } = quantizeActivation(b, br, x, config, tag);
  return b.node('DequantizeLinear', [xq, scale, zeroPoint], { domain: qDomain(b, config), tag: `${tag}DequantizeLinear` });
}

function qDomain(b: LayerBuilder, config: QuantConfig): string {
  return config.qdqDomain === '' && (b.opset ?? 21) < 10 ? 'com.microsoft' : config.qdqDomain;
}

/**
 * The weight of a branch, stored once per shared weight:
 * - `dq`: the DequantizeLinear output, in the weight's own type;
 * - `dq-nbits`: the same, per-channel weights written blocked along K (blocks of
 *   {@link nbitsBlockSize}), the form onnxruntime fuses into MatMulNBits;
 * - `dq-int8`: the values as int8 (4-bit values for the 8-bit integer kernels: stored as int4
 *   behind a Cast to int8 with `int4-storage`, from opset 21);
 * - `integer`: the int8 weight (the same), its scales and zero points, for MatMulIntegerToFloat.
 * int7 (reduce-range) is stored as int8 in every mode.
 */
function cachedWeights(plan: LayerPlan, br: Branch, config: QuantConfig, b: LayerBuilder, cache: WeightCache, mode: 'dq' | 'dq-nbits' | 'dq-int8' | 'integer'): Value[] {
  const key = `${plan.layer.weightValue.name}|${br.role}|${mode}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const N = plan.layer.N;
  const tag = br.role === 'all' ? '' : `${br.role}/`;
  // The 8-bit integer kernels take 4-bit values as int8. Stored as int4 behind a Cast, which
  // onnxruntime folds into an int8 initializer when it loads the model (before its QDQ fusions),
  // the file holds half the bytes and onnxruntime runs the same graph (forms.ts).
  const widened = (mode === 'dq-int8' || mode === 'integer') && br.wType === 'int4';
  const storage: QuantType = br.wType === 'int7' || widened ? 'int8' : br.wType;
  const wq =
    widened && config.int4Storage && (b.opset ?? 21) >= 21
      ? b.node('Cast', [b.quantized(`${tag}weight_quantized`, 'int4', [br.K, N], br.wq)], { attributes: [attr.int('to', DataType.INT8)], tag: `${tag}weight/Cast` })
      : b.quantized(`${tag}weight_quantized`, storage, [br.K, N], br.wq);
  const blockSize = br.blockSize ?? (mode === 'dq-nbits' ? nbitsBlockSize(br.K) : undefined);
  const params = br.blockSize || blockSize === undefined ? { scales: br.wScales, zeroPoints: br.wZeroPoints } : blockedPerChannel(br.wScales, br.wZeroPoints, br.K, N, blockSize);
  // Per output channel: scales [N] on axis 1. Blocked (opset 21): [blocks, N] on axis 0 with block_size.
  const paramDims = blockSize ? [params.scales.length / N, N] : [N];
  const ws = blockSize ? b.constant(`${tag}weight_scale`, (n) => Tensor.fromBytes(n, DataType.FLOAT, paramDims, new Uint8Array(params.scales.buffer, params.scales.byteOffset, params.scales.byteLength))) : b.vectorF32(`${tag}weight_scale`, params.scales);
  const wz = b.quantized(`${tag}weight_zero_point`, storage, paramDims, params.zeroPoints);
  const attributes = blockSize ? [attr.int('axis', 0), attr.int('block_size', blockSize)] : [attr.int('axis', 1)];
  const values = mode === 'integer' ? [wq, ws, wz] : [b.node('DequantizeLinear', [wq, ws, wz], { domain: config.qdqDomain, attributes, tag: `${tag}weight/DequantizeLinear` })];
  cache.set(key, values);
  return values;
}

/**
 * Per-channel parameters `[N]` as blocked ones `[ceil(K/B), N]`: every block of a column
 * repeats the column's scale and zero point, so the dequantized weight is the same.
 */
export function blockedPerChannel(scales: Float32Array, zeroPoints: Int32Array, K: number, N: number, blockSize: number): { scales: Float32Array; zeroPoints: Int32Array } {
  const blocks = Math.ceil(K / blockSize);
  const s = new Float32Array(blocks * N);
  const z = new Int32Array(blocks * N);
  for (let blk = 0; blk < blocks; blk++) {
    s.set(scales.subarray(0, N), blk * N);
    z.set(zeroPoints.subarray(0, N), blk * N);
  }
  return { scales: s, zeroPoints: z };
}
