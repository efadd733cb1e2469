// A TypeScript fake-quant reference for the layers the quantization passes emit, and the
// check of onnxruntime against it.
//
// For each quantized layer (its final node carries `qarvd.decision`), the layer's subgraph is
// read back from the IR — Gather indices (or a Slice's range), Clip bounds, Q/DQ scales and zero points, the
// quantized weights (int4 unpacked) or the MatMulIntegerToFloat operands, the bias — and the
// layer output is recomputed from the layer's float input X with the ONNX-exact kernels of
// src/kernels:
//
//   Y_ref = Σ_branch DQ(Q(clip(X[:, idx]))) · DQ(Wq) + bias
//
// (weight-only branches skip the activation quantizer; a MatMulIntegerToFloat branch is the
// integer GEMM with int32 accumulation, rescaled in float32; a DynamicQuantizeMatMul branch —
// `w8-kernel dynamic`, also its qdq chain — the same after quantizing X[:, idx] to uint8 with
// the scale and zero point the kernel derives from the tensor's own min/max). X and the runtime's layer output
// are observed by adding them as extra graph outputs (calibration's augment step) and running
// the model in onnxruntime-node.
//
// The bound. Everything up to the products is exact in both (the same Q/DQ arithmetic, integer
// accumulation); what may differ is float32 accumulation. A float32 dot product of K terms,
// summed in any order, with or without FMA, is within γ_K = K·u/(1 − K·u) of the exact value
// relative to Σ_k |x̂_k|·|ŵ_k| (Higham, Accuracy and Stability of Numerical Algorithms, §3.1;
// u = 2^-24), and each further Add (branches, bias) and the int32 → float rescale add one
// rounding each. So per element
//
//   |Y_ort − Y_ref| ≤ (K + 4)·u · (Σ_branch |X̂|·|Ŵ| + |b|) + 2^-149·K
//
// which is what "within float rounding" can mean for a runtime free to reorder sums (MLAS
// blocks K). The reference itself accumulates in float64 and rounds once, so its own error is
// u·|Y|, inside the same bound. The report also gives the observed ratio to u·(|X̂|·|Ŵ| + |b|),
// so a reader sees how much of the bound is used (typically √K-like, far below K).
//
// One runtime setting matters: onnxruntime (extended optimizations) fuses a weight-only
// `DequantizeLinear(W) → MatMul` into `com.microsoft.MatMulNBits`, and by default
// (`session.qdq_matmulnbits_accuracy_level` = 4) that kernel quantizes the float activations
// to int8 on the fly — measured: 4e-3 relative deviation on hello_deepa's last layer, 400×
// the bound. That is the runtime computing something other than the model says, so the check
// runs with accuracy level 1 (fp32 compute) — {@link REFERENCE_SESSION_OPTIONS} — and the
// tests report the default session's error separately.
import * as ort from 'onnxruntime-node';
import { attr } from '../../src/graph/ir/attribute.ts';
import { DataType, type DataTypeId, dtypeName } from '../../src/graph/ir/dtype.ts';
import type { Model } from '../../src/graph/ir/model.ts';
import type { Node } from '../../src/graph/ir/node.ts';
import type { Tensor } from '../../src/graph/ir/tensor.ts';
import type { Value } from '../../src/graph/ir/value.ts';
import { matmul, matmulIntegerToFloat } from '../../src/kernels/gemm.ts';
import { dequantizePerChannel, dequantizePerTensor, quantizePerTensor, type QuantType, roundHalfToEven, unpackInt4 } from '../../src/kernels/quantize.ts';
import { augmentModel } from '../../src/passes/calibration/augment.ts';
import { SESSION_OPTIONS } from './ort.ts';

/**
 * Session options of the reference check: one thread, and fp32 compute in the MatMulNBits
 * kernels onnxruntime fuses weight-only DQ → MatMul into (see the file comment).
 */
export const REFERENCE_SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  ...SESSION_OPTIONS,
  extra: { session: { qdq_matmulnbits_accuracy_level: '1' } },
};

/** float32 unit roundoff. */
export const U = 2 ** -24;

/** A per-tensor activation quantizer as read from the graph. */
export interface ActQuantRef {
  scale: number;
  zeroPoint: number;
  type: QuantType;
  clip?: [number, number];
}

/** A per-output-channel quantized weight `[K_b, N]` as read from the graph (one value per element). */
export interface WeightRef {
  values: Int8Array | Uint8Array;
  type: QuantType;
  scales: Float32Array;
  zeroPoints: Int32Array;
  K: number;
  N: number;
  /** The initializer holding the quantized weight (to check sharing). */
  tensor: Tensor;
  /**
   * A layer kept in float compute (small-layers.ts): its weight `[K, N]` as the constant
   * Cast → Sub → Mul (→ Concat → Gather) chain computes it, which onnxruntime folds at load;
   * `values`/`scales`/`zeroPoints` are then those of its first branch.
   */
  dequantized?: Float32Array;
}

/** One sub-matmul of a layer. */
export interface BranchRef {
  /**
   * `fq`: DQ(Q(x))·DQ(W) in float (or x·DQ(W) weight-only); `int`: com.microsoft.MatMulIntegerToFloat;
   * `dyn`: DynamicQuantizeMatMul (the activation quantizer computed per call, {@link dynamicQuantizer}).
   */
  kind: 'fq' | 'int' | 'dyn';
  /** Input channels taken by a Gather or Slice on the last axis (undefined: all). */
  indices?: Int32Array;
  /** A Slice's axis as written (-1, or rank − 1 below opset 11): checked against X's rank as run. */
  sliceAxis?: number;
  act?: ActQuantRef;
  weight: WeightRef;
  /** MatMulIntegerToFloat's or MatMulNBits's own bias input. */
  bias?: Float32Array;
}

/** The layer output as an expression: branches and constant biases joined by Adds (in graph order). */
export type SumRef = { kind: 'branch'; branch: BranchRef } | { kind: 'bias'; bias: Float32Array } | { kind: 'add'; a: SumRef; b: SumRef };

/** A quantized layer read back from the IR. */
export interface LayerRef {
  name: string;
  decision: { mode: string; K: number; N: number; outliers: number; bits: string; format: string; method: string; op: string };
  final: Node;
  /** The layer's float input. */
  x: Value;
  /** The layer's output (the final node's output). */
  y: Value;
  sum: SumRef;
  branches: BranchRef[];
  K: number;
  N: number;
}

/** Reads every quantized layer of the main graph back from the IR; throws on an unexpected pattern. */
export function readQuantizedLayers(model: Model): LayerRef[] {
  const out: LayerRef[] = [];
  for (const node of model.graph) {
    const d = node.metadata.get('qarvd.decision');
    if (d === undefined) continue;
    const decision = JSON.parse(d) as LayerRef['decision'] & { layer: string };
    out.push(readLayer(node, decision.layer, decision));
  }
  return out;
}

function readLayer(final: Node, name: string, decision: LayerRef['decision']): LayerRef {
  const where = `layer ${name}`;
  const inLayer = (n: Node | undefined): n is Node => n !== undefined && n.metadata.get('qarvd.layer') === name;
  if (final.metadata.get('qarvd.layer') !== name) throw new Error(`${where}: final node ${final.label()} has no qarvd.layer=${name}`);
  const branches: BranchRef[] = [];
  let x: Value | undefined;
  const setX = (v: Value) => {
    if (x && x !== v) throw new Error(`${where}: branches read different inputs (${x.name}, ${v.name})`);
    x = v;
  };
  // Activation path of a branch: [Gather →] [Clip →] [QuantizeLinear [→ DequantizeLinear]].
  const activation = (v: Value, quantized: 'dq' | 'q' | 'none'): { act?: ActQuantRef; indices?: Int32Array; sliceAxis?: number } => {
    let act: ActQuantRef | undefined;
    if (quantized !== 'none') {
      let qv = v;
      if (quantized === 'dq') {
        const dq = expectOp(v.producer(), 'DequantizeLinear', where, inLayer);
        const [s, z] = [scalarF32(dq.input(1), where), scalarInt(dq.input(2), where)];
        qv = dq.input(0)!;
        act = { scale: s, zeroPoint: z.value, type: z.type };
      }
      const q = expectOp(qv.producer(), 'QuantizeLinear', where, inLayer);
      const [s, z] = [scalarF32(q.input(1), where), scalarInt(q.input(2), where)];
      if (act && (act.scale !== s || act.zeroPoint !== z.value || act.type !== z.type)) throw new Error(`${where}: Q and DQ of the activation disagree`);
      act = { scale: s, zeroPoint: z.value, type: z.type };
      v = q.input(0)!;
      const clip = v.producer();
      if (inLayer(clip) && clip.opType === 'Clip') {
        act.clip = [scalarF32(clip.input(1), where), scalarF32(clip.input(2), where)];
        v = clip.input(0)!;
      }
    }
    let indices: Int32Array | undefined;
    let sliceAxis: number | undefined;
    const g = v.producer();
    if (inLayer(g) && g.opType === 'Gather') {
      if (g.intAttr('axis', 0) !== -1) throw new Error(`${where}: Gather on axis ${g.intAttr('axis', 0)}, expected -1`);
      const t = constOf(g.input(1), where);
      if (t.dataType !== DataType.INT64) throw new Error(`${where}: Gather indices are ${dtypeName(t.dataType)}`);
      indices = Int32Array.from(t.toNumbers());
      v = g.input(0)!;
    } else if (inLayer(g) && g.opType === 'Slice') {
      // Contiguous channels: one range on the last axis, without steps: Slice(X, [start], [end], [axis])
      // from opset 10, Slice-1's attributes below; the axis -1, or rank − 1 below opset 11 (emit.ts).
      const attrs = g.inputs.length === 1;
      const [start, end, axis] = attrs ? (['starts', 'ends', 'axes'] as const).map((a) => g.intsAttr(a)) : [1, 2, 3].map((i) => constOf(g.input(i), where).toNumbers());
      if (axis?.length !== 1 || axis[0]! < -1 || start?.length !== 1 || end?.length !== 1 || g.input(4)) throw new Error(`${where}: Slice of the activation is not one range on one axis`);
      sliceAxis = axis[0];
      indices = Int32Array.from({ length: end[0]! - start[0]! }, (_, i) => start[0]! + i);
      v = g.input(0)!;
    }
    if (inLayer(v.producer())) throw new Error(`${where}: unexpected ${v.producer()!.opType} on the activation path`);
    setX(v);
    return { act, indices, sliceAxis };
  };
  const walk = (v: Value): SumRef => {
    const p = v.producer();
    if (!p && v.constTensor()) return { kind: 'bias', bias: floatVector(v.constTensor()!) };
    if (!inLayer(p)) throw new Error(`${where}: ${v.name} is not produced inside the layer`);
    if (p.opType === 'Add' && p.domain === '') return { kind: 'add', a: walk(p.input(0)!), b: walk(p.input(1)!) };
    // Sum(t0, t1, …) as ((t0 + t1) + …): one float32 rounding per term, as the bound assumes.
    if (p.opType === 'Sum' && p.domain === '') return p.inputs.slice(1).reduce<SumRef>((a, t) => ({ kind: 'add', a, b: walk(t!) }), walk(p.input(0)!));
    let branch: BranchRef;
    if (p.opType === 'MatMul' && p.domain === '') {
      const weight = dequantizedWeight(p.input(1), where);
      const a = p.input(0)!;
      const quantized = a.producer()?.opType === 'DequantizeLinear' && inLayer(a.producer()) ? 'dq' : 'none';
      branch = { kind: 'fq', weight, ...activation(a, quantized) };
    } else if (p.opType === 'MatMulIntegerToFloat' && p.domain === 'com.microsoft') {
      const weight = integerWeight(p.input(1), p.input(3), p.input(5), where);
      const { act, indices, sliceAxis } = activation(p.input(0)!, 'q');
      const aScale = scalarF32(p.input(2), where);
      const az = scalarInt(p.input(4), where);
      if (act!.scale !== aScale || act!.zeroPoint !== az.value) throw new Error(`${where}: MatMulIntegerToFloat's a_scale / a_zero_point differ from the QuantizeLinear's`);
      const biasIn = p.input(6);
      branch = { kind: 'int', weight, act, indices, sliceAxis, bias: biasIn ? floatVector(constOf(biasIn, where)) : undefined };
    } else if (p.opType === 'DynamicQuantizeMatMul' && p.domain === 'com.microsoft') {
      const biasIn = p.input(4);
      branch = { kind: 'dyn', weight: integerWeight(p.input(1), p.input(2), p.input(3), where), ...activation(p.input(0)!, 'none'), bias: biasIn ? floatVector(constOf(biasIn, where)) : undefined };
    } else if (p.opType === 'Mul' && p.domain === '' && p.input(0)?.producer()?.opType === 'Cast') {
      // The qdq form of DynamicQuantizeMatMul: Mul(Cast(MatMulInteger(DQL(x), W, x_zp, w_zp)), Mul(x_scale, w_scale)).
      const cast = expectOp(p.input(0)!.producer(), 'Cast', where, inLayer);
      const mmi = expectOp(cast.input(0)!.producer(), 'MatMulInteger', where, inLayer);
      const scales = expectOp(p.input(1)!.producer(), 'Mul', where, inLayer);
      const dql = expectOp(mmi.input(0)!.producer(), 'DynamicQuantizeLinear', where, inLayer);
      if (scales.input(0) !== dql.output(1) || mmi.input(2) !== dql.output(2)) throw new Error(`${where}: MatMulInteger chain does not use its DynamicQuantizeLinear's scale and zero point`);
      branch = { kind: 'dyn', weight: integerWeight(mmi.input(1), scales.input(1), mmi.input(3), where), ...activation(dql.input(0)!, 'none') };
    } else if (p.opType === 'MatMulNBits' && p.domain === 'com.microsoft') {
      // Weight-only QOperator form: the float input times a blockwise weight whose blocks
      // share their column's scale and zero point (per-channel quantization).
      const a = p.input(0)!;
      const quantized = a.producer()?.opType === 'DequantizeLinear' && inLayer(a.producer()) ? 'dq' : 'none';
      const biasIn = p.input(5);
      branch = { kind: 'fq', weight: nbitsWeight(p, where), ...activation(a, quantized), bias: biasIn ? floatVector(constOf(biasIn, where)) : undefined };
    } else {
      throw new Error(`${where}: unexpected ${p.domain ? `${p.domain}.` : ''}${p.opType} in the layer's sum`);
    }
    branches.push(branch);
    return { kind: 'branch', branch };
  };
  const y = final.output(0);
  const sum = walk(y);
  if (!x) throw new Error(`${where}: no input found`);
  // A split layer's normal branch may read all of X (outlier rows held at the zero point).
  const whole = branches.find((b) => !b.indices);
  const K = whole ? whole.weight.K : branches.reduce((s, b) => s + b.weight.K, 0);
  const N = branches[0]!.weight.N;
  for (const b of branches) {
    if (b.weight.N !== N) throw new Error(`${where}: branches have different N`);
    if ((b.indices?.length ?? b.weight.K) !== b.weight.K) throw new Error(`${where}: ${b.indices?.length} gathered channels for a weight of ${b.weight.K} rows`);
  }
  return { name, decision, final, x, y, sum, branches, K, N };
}

/** An int8/uint8 `[K, N]` weight with per-column scales and zero points, as the integer kernels take it. */
function integerWeight(w: Value | null, scale: Value | null, zeroPoint: Value | null, where: string): WeightRef {
  const { tensor: bq, values } = storedWeight(w, where);
  const [K, N] = bq.dims as [number, number];
  const scales = floatVector(constOf(scale, where));
  const zeroPoints = Int32Array.from(quantValues(constOf(zeroPoint, where)).values);
  if (scales.length !== N || zeroPoints.length !== N) throw new Error(`${where}: ${scales.length} scales / ${zeroPoints.length} zero points for N = ${N}`);
  return { ...values, scales, zeroPoints, K, N, tensor: bq };
}

/**
 * A quantized weight's values as the op reading `v` sees them, and the initializer that holds
 * them: a constant, or (int4-storage) an int4 constant behind `Cast(to int8)`, whose values
 * reach the op as int8; `dataType` is the type the op sees.
 */
function storedWeight(v: Value | null, where: string): { tensor: Tensor; values: { values: Int8Array | Uint8Array; type: QuantType }; dataType: number } {
  const cast = v?.producer();
  if (cast?.opType === 'Cast' && !v!.constTensor()) {
    const t = constOf(cast.input(0), where);
    if (t.dataType !== DataType.INT4 || cast.intAttr('to', 0) !== DataType.INT8) throw new Error(`${where}: weight Cast from ${dtypeName(t.dataType)} to ${dtypeName(cast.intAttr('to', 0) as DataTypeId)}, expected int4 to int8`);
    return { tensor: t, values: { values: Int8Array.from(quantValues(t).values), type: 'int8' }, dataType: DataType.INT8 };
  }
  const t = constOf(v, where);
  return { tensor: t, values: quantValues(t), dataType: t.dataType };
}

/**
 * The uint8 quantizer DynamicQuantizeMatMul and DynamicQuantizeLinear derive from the tensor
 * they are given, in onnxruntime's float32 steps: the range [min, max] widened to include 0,
 * `s = (max − min) / 255` (1 for an all-zero tensor), `z = round_half_even(clamp(0 − min / s, 0, 255))`.
 */
export function dynamicQuantizer(x: Float32Array): ActQuantRef {
  let min = 0;
  let max = 0;
  for (const v of x) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const scale = max === min ? 1 : Math.fround(Math.fround(max - min) / 255);
  const z = Math.fround(0 - Math.fround(min / scale));
  return { scale, zeroPoint: roundHalfToEven(Math.min(255, Math.max(0, z))), type: 'uint8' };
}

function expectOp(n: Node | undefined, op: string, where: string, inLayer: (n: Node | undefined) => n is Node): Node {
  if (!inLayer(n) || n.opType !== op) throw new Error(`${where}: expected ${op}, found ${n ? n.opType : 'no producer'}`);
  return n;
}

function constOf(v: Value | null, where: string): Tensor {
  const t = v?.constTensor();
  if (!t) throw new Error(`${where}: ${v?.name ?? '(missing)'} is not a constant`);
  return t;
}

function floatVector(t: Tensor): Float32Array {
  return Float32Array.from(t.toFloat32());
}

function scalarF32(v: Value | null, where: string): number {
  const t = constOf(v, where);
  if (t.dataType !== DataType.FLOAT || t.size !== 1) throw new Error(`${where}: ${t.name} is not a float scalar`);
  return t.toFloat32()[0]!;
}

const QTYPE: Record<number, QuantType> = { [DataType.INT8]: 'int8', [DataType.UINT8]: 'uint8', [DataType.INT4]: 'int4', [DataType.UINT4]: 'uint4' };

/** Values of an int8/uint8/int4/uint4 tensor, one per element (4-bit unpacked). */
export function quantValues(t: Tensor): { values: Int8Array | Uint8Array; type: QuantType } {
  const type = QTYPE[t.dataType];
  if (!type) throw new Error(`tensor ${t.name} is ${dtypeName(t.dataType)}, not a quantized type`);
  const b = t.bytes();
  if (type === 'int4' || type === 'uint4') return { values: unpackInt4(b, t.size, type === 'int4'), type };
  return { values: type === 'int8' ? new Int8Array(b.buffer, b.byteOffset, t.size).slice() : b.slice(0, t.size), type };
}

function scalarInt(v: Value | null, where: string): { value: number; type: QuantType } {
  const t = constOf(v, where);
  if (t.size !== 1) throw new Error(`${where}: zero point ${t.name} is not a scalar`);
  const q = quantValues(t);
  return { value: q.values[0]!, type: q.type };
}

function dequantizedWeight(v: Value | null, where: string): WeightRef {
  const op = v?.producer()?.opType;
  if (op === 'Mul' || op === 'Gather') return foldedWeight(v!, where);
  const dq = v?.producer();
  if (!dq || dq.opType !== 'DequantizeLinear') throw new Error(`${where}: the MatMul's weight is not a DequantizeLinear output`);
  const blockSize = dq.intAttr('block_size', 0);
  if (dq.intAttr('axis', 1) !== (blockSize ? 0 : 1)) throw new Error(`${where}: weight DequantizeLinear on axis ${dq.intAttr('axis', 1)}`);
  const { tensor: wq, values: wv, dataType: wType } = storedWeight(dq.input(0), where);
  if (wq.dims.length !== 2) throw new Error(`${where}: quantized weight is ${wq.dims.length}-D`);
  const [K, N] = wq.dims as [number, number];
  let scales = floatVector(constOf(dq.input(1), where));
  const zt = constOf(dq.input(2), where);
  let zeroPoints = Int32Array.from(quantValues(zt).values);
  if (blockSize) {
    // A per-channel weight written blocked (for onnxruntime's MatMulNBits fusion): every block repeats its column's parameters.
    const blocks = Math.ceil(K / blockSize);
    if (scales.length !== blocks * N) throw new Error(`${where}: ${scales.length} blocked scales for K = ${K}, N = ${N}, block ${blockSize}`);
    for (let i = N; i < scales.length; i++) {
      if (scales[i] !== scales[i % N] || zeroPoints[i] !== zeroPoints[i % N]) throw new Error(`${where}: blocked weight DequantizeLinear with different blocks is not handled by the reference`);
    }
    scales = scales.slice(0, N);
    zeroPoints = zeroPoints.slice(0, N);
  }
  if (scales.length !== N || zeroPoints.length !== N) throw new Error(`${where}: ${scales.length} scales / ${zeroPoints.length} zero points for N = ${N}`);
  if (zt.dataType !== wType) throw new Error(`${where}: weight zero point type ${dtypeName(zt.dataType)} differs from the weight's`);
  return { ...wv, scales, zeroPoints, K, N, tensor: wq };
}

/**
 * The float-compute form's weight: per branch `Mul(Sub(Cast(Wq), z), s)` (Sub absent for zero
 * points 0), a split's branches stacked by Concat and reordered by Gather on axis 0. Computed
 * in float32 as onnxruntime's constant folding does: (q − z) is exact, the product rounds once.
 */
function foldedWeight(v: Value, where: string): WeightRef {
  const chain = (u: Value): WeightRef => {
    const mul = u.producer()!;
    if (mul.opType !== 'Mul') throw new Error(`${where}: expected Mul in the folded weight, found ${mul.opType}`);
    const scales = floatVector(constOf(mul.input(1), where));
    let c = mul.input(0)!.producer()!;
    let zeroPoints = new Int32Array(scales.length);
    if (c.opType === 'Sub') {
      const zc = c.input(1)!.producer();
      if (zc?.opType !== 'Cast') throw new Error(`${where}: folded weight zero points are not a Cast of a constant`);
      zeroPoints = Int32Array.from(quantValues(constOf(zc.input(0), where)).values);
      c = c.input(0)!.producer()!;
    }
    if (c.opType !== 'Cast') throw new Error(`${where}: expected Cast in the folded weight, found ${c.opType}`);
    const wq = constOf(c.input(0), where);
    const [K, N] = wq.dims as [number, number];
    const q = quantValues(wq);
    const dequantized = new Float32Array(K * N);
    for (let i = 0; i < dequantized.length; i++) dequantized[i] = Math.fround((q.values[i]! - zeroPoints[i % N]!) * scales[i % N]!);
    return { ...q, scales, zeroPoints, K, N, tensor: wq, dequantized };
  };
  const g = v.producer()!;
  if (g.opType !== 'Gather') return chain(v);
  if (g.intAttr('axis', 0) !== 0) throw new Error(`${where}: folded weight Gather on axis ${g.intAttr('axis', 0)}`);
  const concat = g.input(0)!.producer();
  if (concat?.opType !== 'Concat') throw new Error(`${where}: folded weight Gather does not read a Concat`);
  const parts = concat.inputs.map((u) => chain(u!));
  const N = parts[0]!.N;
  const stacked = new Float32Array(parts.reduce((n, p) => n + p.K * N, 0));
  let at = 0;
  for (const p of parts) {
    stacked.set(p.dequantized!, at);
    at += p.K * N;
  }
  const position = constOf(g.input(1), where).toNumbers();
  const K = position.length;
  const dequantized = new Float32Array(K * N);
  position.forEach((row, k) => dequantized.set(stacked.subarray(Number(row) * N, (Number(row) + 1) * N), k * N));
  return { ...parts[0]!, K, dequantized };
}

/** Reads a MatMulNBits weight back as a per-channel `[K, N]` weight, checking that every block of a column shares its scale and zero point. */
function nbitsWeight(node: Node, where: string): WeightRef {
  const K = node.intAttr('K', 0);
  const N = node.intAttr('N', 0);
  const bits = node.intAttr('bits', 4);
  const blockSize = node.intAttr('block_size', 0);
  const bt = constOf(node.input(1), where);
  const raw = bt.bytes();
  const scalesIn = floatVector(constOf(node.input(2), where));
  const zpRaw = constOf(node.input(3), where).bytes();
  const blocks = Math.ceil(K / blockSize);
  const blob = (blockSize * bits) / 8;
  const zpPerColumn = Math.ceil((blocks * bits) / 8);
  const unpack = (bytes: Uint8Array, i: number) => (bits === 8 ? bytes[i]! : (bytes[i >> 1]! >> ((i & 1) * 4)) & 0xf);
  const values = new Uint8Array(K * N);
  const scales = new Float32Array(N);
  const zeroPoints = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) values[k * N + n] = unpack(raw.subarray(n * blocks * blob, (n + 1) * blocks * blob), k);
    scales[n] = scalesIn[n * blocks]!;
    zeroPoints[n] = unpack(zpRaw.subarray(n * zpPerColumn, (n + 1) * zpPerColumn), 0);
    for (let blk = 1; blk < blocks; blk++) {
      if (scalesIn[n * blocks + blk] !== scales[n] || unpack(zpRaw.subarray(n * zpPerColumn, (n + 1) * zpPerColumn), blk) !== zeroPoints[n]) {
        throw new Error(`${where}: MatMulNBits column ${n} has blocks with different scales or zero points (not per-channel)`);
      }
    }
  }
  return { values, type: bits === 8 ? 'uint8' : 'uint4', scales, zeroPoints, K, N, tensor: bt };
}

/** The reference output of a layer and the per-element rounding bound. */
export interface LayerReference {
  y: Float32Array;
  /** Σ_branch |X̂|·|Ŵ| + |b| per element (float64). */
  magnitude: Float64Array;
}

/**
 * Recomputes a layer's output from its float input `x` (`[..., K]`, row-major; M rows).
 * Each Add is evaluated in float32, in the graph's order.
 */
export function referenceLayer(layer: LayerRef, x: Float32Array): LayerReference {
  const { K, N } = layer;
  if (x.length % K !== 0) throw new Error(`layer ${layer.name}: input of ${x.length} values is not [..., ${K}]`);
  const M = x.length / K;
  const magnitude = new Float64Array(M * N);
  const branchOut = (br: BranchRef): Float32Array => {
    const Kb = br.weight.K;
    let xb = x;
    if (br.indices) {
      xb = new Float32Array(M * Kb);
      for (let i = 0; i < M; i++) for (let k = 0; k < Kb; k++) xb[i * Kb + k] = x[i * K + br.indices[k]!]!;
    }
    if (br.act?.clip) {
      const [lo, hi] = br.act.clip;
      xb = xb.map((v) => (v < lo ? lo : v > hi ? hi : v));
    }
    const w = br.weight;
    const wDeq = w.dequantized ?? dequantizePerChannel(w.values, Kb, N, w.scales, w.zeroPoints);
    let xHat = xb;
    let y: Float32Array;
    if (br.kind === 'int' || br.kind === 'dyn') {
      const a = br.kind === 'dyn' ? dynamicQuantizer(xb) : br.act!;
      const q = quantizePerTensor(xb, a.scale, a.zeroPoint, a.type);
      xHat = dequantizePerTensor(q, a.scale, a.zeroPoint);
      y = matmulIntegerToFloat({ a: q, aZeroPoint: a.zeroPoint, b: w.values, bZeroPoint: w.zeroPoints, aScale: a.scale, bScale: w.scales, bias: br.bias, M, K: Kb, N });
    } else {
      if (br.act) xHat = dequantizePerTensor(quantizePerTensor(xb, br.act.scale, br.act.zeroPoint, br.act.type), br.act.scale, br.act.zeroPoint);
      y = matmul(xHat, wDeq, M, Kb, N);
      // MatMulNBits's own bias input: one more float32 rounding.
      if (br.bias) for (let i = 0; i < y.length; i++) y[i] = y[i]! + br.bias[i % N]!;
    }
    const absW = wDeq.map(Math.abs);
    const absX = xHat.map(Math.abs);
    const mag = matmulF64(absX, absW, M, Kb, N);
    for (let i = 0; i < magnitude.length; i++) magnitude[i] += mag[i]! + (br.bias ? Math.abs(br.bias[i % N]!) : 0);
    return y;
  };
  const evaluate = (s: SumRef): Float32Array => {
    if (s.kind === 'branch') return branchOut(s.branch);
    if (s.kind === 'bias') {
      if (s.bias.length !== N) throw new Error(`layer ${layer.name}: bias of ${s.bias.length} values for N = ${N}`);
      for (let i = 0; i < magnitude.length; i++) magnitude[i] += Math.abs(s.bias[i % N]!);
      const out = new Float32Array(M * N);
      for (let i = 0; i < out.length; i++) out[i] = s.bias[i % N]!;
      return out;
    }
    const a = evaluate(s.a);
    const b = evaluate(s.b);
    // Float32Array stores round the float64 sum of two float32 values once: IEEE float32 addition.
    const out = new Float32Array(a.length);
    for (let i = 0; i < out.length; i++) out[i] = a[i]! + b[i]!;
    return out;
  };
  return { y: evaluate(layer.sum), magnitude };
}

function matmulF64(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float64Array {
  const out = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let k = 0; k < K; k++) {
      const aik = a[i * K + k]!;
      if (aik === 0) continue;
      for (let j = 0; j < N; j++) out[i * N + j] += aik * b[k * N + j]!;
    }
  }
  return out;
}

/** The rounding bound of one element (see the file comment). */
export function roundingBound(K: number, magnitude: number): number {
  return (K + 4) * U * magnitude + 2 ** -149 * K;
}

/** The comparison of one layer. */
export interface LayerCheck {
  name: string;
  mode: string;
  K: number;
  N: number;
  branches: string;
  /** Rows compared (M). */
  rows: number;
  maxAbsDiff: number;
  maxAbsY: number;
  /** Elements over the bound. */
  violations: number;
  /** Largest |Δ| / bound (≤ 1 passes). */
  worstBoundRatio: number;
  /** Largest |Δ| / (u·magnitude): how many unit roundings of Σ|x̂||ŵ| the runtime was off. */
  worstUlpRatio: number;
  /** The first element over the bound, for messages. */
  firstViolation?: string;
}

/** What {@link checkAgainstReference} returns. */
export interface ReferenceReport {
  layers: LayerCheck[];
  /** The model's own outputs from the same run. */
  outputs: Record<string, ort.Tensor>;
}

/**
 * Runs the quantized model in onnxruntime-node with every layer's input and output as extra
 * outputs, and compares each layer's output with {@link referenceLayer}.
 */
export async function checkAgainstReference(
  model: Model,
  feeds: Record<string, ort.Tensor>,
  layers: LayerRef[] = readQuantizedLayers(model),
  sessionOptions: ort.InferenceSession.SessionOptions = REFERENCE_SESSION_OPTIONS,
): Promise<ReferenceReport> {
  if (layers.length === 0) throw new Error('no quantized layers (no node carries qarvd.decision)');
  const userOutputs = model.graph.outputs.map((v) => v.name);
  const observe = layers.flatMap((l) => (l.x.isGraphInput() ? [l.y] : [l.x, l.y]));
  const aug = sessionOptions === REFERENCE_SESSION_OPTIONS ? withFp32NBits(model, () => augmentModel(model, observe)) : augmentModel(model, observe);
  let run: Record<string, ort.Tensor>;
  try {
    const session = await ort.InferenceSession.create(aug.path, sessionOptions);
    try {
      run = await session.run(feeds);
    } finally {
      await session.release();
    }
  } finally {
    aug.dispose();
  }
  const data = (v: Value): ort.Tensor => {
    const t = v.isGraphInput() ? feeds[v.name] : run[v.name];
    if (!t) throw new Error(`no tensor observed for ${v.name}`);
    if (t.type !== 'float32') throw new Error(`${v.name} is ${t.type}, expected float32`);
    return t;
  };
  const checks = layers.map((l): LayerCheck => {
    const xt = data(l.x);
    const yt = data(l.y);
    const rank = xt.dims.length;
    for (const b of l.branches) if (b.sliceAxis !== undefined && b.sliceAxis !== -1 && b.sliceAxis !== rank - 1) throw new Error(`layer ${l.name}: Slice on axis ${b.sliceAxis} of an input of rank ${rank}, not the last`);
    const ref = referenceLayer(l, xt.data as Float32Array);
    const yOrt = yt.data as Float32Array;
    const expectDims = [...xt.dims.slice(0, -1), l.N].join('x');
    if (yt.dims.join('x') !== expectDims) throw new Error(`layer ${l.name}: runtime output is [${yt.dims.join('x')}], expected [${expectDims}]`);
    let maxAbsDiff = 0;
    let maxAbsY = 0;
    let violations = 0;
    let worstBoundRatio = 0;
    let worstUlpRatio = 0;
    let firstViolation: string | undefined;
    for (let i = 0; i < yOrt.length; i++) {
      const d = Math.abs(yOrt[i]! - ref.y[i]!);
      const bound = roundingBound(l.K, ref.magnitude[i]!);
      maxAbsDiff = Math.max(maxAbsDiff, Number.isNaN(d) ? Infinity : d);
      maxAbsY = Math.max(maxAbsY, Math.abs(ref.y[i]!));
      const r = d / bound;
      if (!(d <= bound)) {
        violations++;
        firstViolation ??= `element ${i} (row ${Math.floor(i / l.N)}, column ${i % l.N}): runtime ${yOrt[i]}, reference ${ref.y[i]}, |Δ| ${d.toExponential(3)} > bound ${bound.toExponential(3)}`;
      }
      worstBoundRatio = Math.max(worstBoundRatio, Number.isNaN(r) ? Infinity : r);
      if (ref.magnitude[i]! > 0) worstUlpRatio = Math.max(worstUlpRatio, d / (U * ref.magnitude[i]!));
    }
    const branches = l.branches.map((b) => `${b.kind}${b.act ? '' : '(w-only)'}${b.indices ? `[${b.indices.length}]` : ''} ${b.weight.type}`).join(' + ');
    return { name: l.name, mode: l.decision.mode, K: l.K, N: l.N, branches, rows: yOrt.length / l.N, maxAbsDiff, maxAbsY, violations, worstBoundRatio, worstUlpRatio, firstViolation };
  });
  return { layers: checks, outputs: Object.fromEntries(userOutputs.map((n) => [n, run[n]!])) };
}

/**
 * Runs `save` with every emitted MatMulNBits at accuracy level 1 (fp32 compute), then puts the
 * attributes back: the qoperator weight-only form asks for level 4 (int8 compute, for speed),
 * which quantizes the activation at run time — the counterpart of the session option above.
 */
export function withFp32NBits<T>(model: Model, save: () => T): T {
  const nodes = model.graph.nodes().filter((n) => n.opType === 'MatMulNBits' && n.attributes.has('accuracy_level'));
  const kept = nodes.map((n) => n.attributes.get('accuracy_level')!);
  for (const n of nodes) n.attributes.set('accuracy_level', attr.int('accuracy_level', 1));
  try {
    return save();
  } finally {
    nodes.forEach((n, i) => n.attributes.set('accuracy_level', kept[i]!));
  }
}

/** ‖a − b‖₂ / ‖b‖₂ over two float tensors of the same size. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relativeError: ${a.length} vs ${b.length} values`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
