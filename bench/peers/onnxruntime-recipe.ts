/**
 * onnxruntime's own quantizer, reproduced: what the Python package `onnxruntime.quantization`
 * writes for an fp32 model, rebuilt in TypeScript on this project's IR so that the peer rows
 * of the quality table and the speed anchors need no Python (PyPI is not reachable here, and
 * the Python package is a dev-time tool, not a dependency). Dev-time tooling, not part of the
 * library.
 *
 * Three recipes, each the Python call named beside it (docs/peers.md lists every default and
 * the onnxruntime source read):
 * - {@link quantizeStaticQdq}: `quantize_static(model, reader, quant_format=QDQ,
 *   per_channel=True, weight_type=QInt8, activation_type=QUInt8, calibrate_method=MinMax,
 *   op_types_to_quantize=['MatMul', 'Gemm'])`.
 * - {@link quantizeDynamicInt8}: `quantize_dynamic(model, out, weight_type=QInt8,
 *   op_types_to_quantize=['MatMul'])`.
 * - {@link quantizeMatMulNBits}: `MatMulNBitsQuantizer(model, block_size, is_symmetric,
 *   accuracy_level).process()` with its default RTN configuration (`DefaultWeightOnlyQuantConfig`,
 *   QOperator format: `com.microsoft.MatMulNBits`).
 *
 * Float arithmetic follows the source: numpy float32/float64 where the Python code uses them
 * (round half to even), MLAS's float32 C++ (`roundf`, half away from zero) for the 4-bit blocks.
 */
import type * as ortTypes from 'onnxruntime-node';
import { attr } from '../../src/graph/ir/attribute.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import type { Graph } from '../../src/graph/ir/graph.ts';
import type { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import type { Value } from '../../src/graph/ir/value.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { augmentModel } from '../../src/passes/calibration/augment.ts';
import { loadCalibrationModule } from '../../src/passes/calibration/module.ts';
import { contextFor, drawSample } from '../../src/passes/calibration/samples.ts';
import { importOnnxruntime } from '../../src/runtime/optional-import.ts';

/** Model inputs by name, as a calibration data reader yields them. */
export type Feeds = Record<string, ortTypes.Tensor>;

// ---------------------------------------------------------------------------------------------
// Rounding as the sources do it.

const f32 = Math.fround;

/** numpy's `round` (and `rint`): half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round sends .5 up; numpy sends it to the even neighbour.
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** C's `roundf`: half away from zero. */
export function roundHalfAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

// ---------------------------------------------------------------------------------------------
// quant_utils.py

/** Scale (a float32 value) and zero point of one quantizer. */
export interface ScaleZeroPoint {
  scale: number;
  zeroPoint: number;
}

/**
 * `quant_utils.compute_scale_zp(rmin, rmax, qmin, qmax, symmetric)` for float32 `rmin`/`rmax`:
 * the range is widened to include 0, made symmetric when asked, `scale = (rmax − rmin) /
 * (qmax − qmin)` in float64 (the difference itself in float32), `zero_point = round(qmin −
 * rmin / scale)` half to even (symmetric: `round((qmin + qmax) / 2)`), the scale then cast to
 * float32. A scale under float32's smallest normal becomes 1 with zero point 0.
 */
export function computeScaleZp(rmin: number, rmax: number, qmin: number, qmax: number, symmetric: boolean): ScaleZeroPoint {
  let lo = Math.min(f32(rmin), 0);
  let hi = Math.max(f32(rmax), 0);
  if (symmetric) {
    const absmax = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -absmax;
    hi = absmax;
  }
  const scale = f32(hi - lo) / (qmax - qmin);
  if (scale < 1.1754943508222875e-38) return { scale: 1, zeroPoint: 0 };
  const zeroPoint = symmetric ? roundHalfEven((qmin + qmax) / 2) : roundHalfEven(qmin - lo / scale);
  return { scale: f32(scale), zeroPoint };
}

/**
 * `quant_utils.quantize_nparray` for one value: `(x.astype(float32) / scale).round() + zp`
 * (float32 division, half to even), clipped to the type's full range.
 */
export function quantizeValue(x: number, scale: number, zeroPoint: number, qmin: number, qmax: number): number {
  const q = roundHalfEven(f32(f32(x) / scale)) + zeroPoint;
  return q < qmin ? qmin : q > qmax ? qmax : q;
}

/** int8 weights with their per-channel (or per-tensor) scales; zero points are 0 (symmetric). */
export interface Int8Weights {
  data: Int8Array;
  scales: Float32Array;
}

/**
 * `quantize_weight_per_channel(name, INT8, axis)` (symmetric, `reduce_range` off): per channel
 * along `axis` of a row-major [rows, cols] matrix, range [−127, 127], `scale = 2·max|w| / 254`,
 * zero point 0.
 */
export function quantizeInt8PerChannel(w: Float32Array, rows: number, cols: number, axis: 0 | 1): Int8Weights {
  const channels = axis === 1 ? cols : rows;
  const data = new Int8Array(rows * cols);
  const scales = new Float32Array(channels);
  const at = (c: number, i: number) => (axis === 1 ? i * cols + c : c * cols + i);
  const len = axis === 1 ? rows : cols;
  for (let c = 0; c < channels; c++) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < len; i++) {
      const v = w[at(c, i)]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const { scale } = computeScaleZp(lo, hi, -127, 127, true);
    scales[c] = scale;
    for (let i = 0; i < len; i++) data[at(c, i)] = quantizeValue(w[at(c, i)]!, scale, 0, -128, 127);
  }
  return { data, scales };
}

/** `quantize_initializer(weight, INT8)` per tensor (symmetric, `reduce_range` off). */
export function quantizeInt8PerTensor(w: Float32Array): Int8Weights {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of w) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const { scale } = computeScaleZp(lo, hi, -127, 127, true);
  return { data: Int8Array.from(w, (v) => quantizeValue(v, scale, 0, -128, 127)), scales: Float32Array.of(scale) };
}

// ---------------------------------------------------------------------------------------------
// MLAS blockwise 4-bit quantization (q4_dq.cpp, BlockwiseQuantizer<float, block, 4, true>)

/** MatMulNBits's B, scales and zero points. */
export interface Packed4Bit {
  /** uint8 [N, kBlocks, blockSize / 2]: column-major blocks, even row in the low nibble. */
  packed: Uint8Array;
  /** float32 [N · kBlocks], column-major. */
  scales: Float32Array;
  /** uint8 [N · ceil(kBlocks / 2)], two blocks a byte (even block low); absent when symmetric. */
  zeroPoints?: Uint8Array;
  kBlocks: number;
}

/**
 * `quantize_matmul_4bits(packed, W, scales, zp, block_size, N, K, is_symmetric)`, i.e. MLAS's
 * `MlasQuantizeBlockwise<float, 4>` column-wise on a row-major [K, N] weight: per column and
 * block of `blockSize` rows, float32 min/max. Asymmetric (`range2scalezp`): the range widened
 * to include 0, `scale = (max − min) / 15`, `zp = roundf(−min / scale)` clamped to [0, 15].
 * Symmetric (`range2scale`): `scale = −m / 8` with `m` the signed value of larger magnitude,
 * zero point 8 (implicit). Each value: `clamp(roundf(v · (1 / scale) + zp), 0, 15)` in float32.
 * The work goes in thread blocks of two quantization blocks of one column, as MLAS's does: that
 * fixes the bytes MLAS leaves as they are (zero point 8 for a missing odd block, and the high
 * nibble of a last odd row).
 */
export function quantizeBlockwise4(w: Float32Array, K: number, N: number, blockSize: number, symmetric: boolean): Packed4Bit {
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new Error(`block size ${blockSize}: MatMulNBits takes a power of two ≥ 16`);
  const kBlocks = Math.ceil(K / blockSize);
  const qRows = (kBlocks * blockSize) / 2; // bytes per column
  const packed = new Uint8Array(N * qRows);
  const scales = new Float32Array(N * kBlocks);
  const zpPerCol = Math.ceil(kBlocks / 2);
  const zeroPoints = symmetric ? undefined : new Uint8Array(N * zpPerCol);
  const threadRows = 2 * blockSize;
  for (let j = 0; j < N; j++) {
    for (let r = 0; r < K; r += threadRows) {
      const rEnd = Math.min(r + threadRows, K);
      const zp = [8, 8];
      const metaRow = r / blockSize;
      for (let kp = 0; kp < 2; kp++) {
        const start = r + kp * blockSize;
        const end = Math.min(start + blockSize, rEnd);
        if (start >= end) continue;
        let min = 3.4028234663852886e38;
        let max = -min;
        for (let i = start; i < end; i++) {
          const v = w[i * N + j]!;
          if (v < min) min = v;
          if (v > max) max = v;
        }
        const meta = j * kBlocks + metaRow + kp;
        if (symmetric) {
          const m = Math.abs(max) > Math.abs(min) ? max : min;
          scales[meta] = f32(-m / 8);
        } else {
          min = Math.min(min, 0);
          max = Math.max(max, 0);
          const s = f32(f32(max - min) / 15);
          let zpf = min;
          if (s !== 0) zpf = f32(0 - f32(min / s));
          zp[kp] = zpf < 0 ? 0 : zpf > 15 ? 15 : roundHalfAway(zpf);
          scales[meta] = s;
        }
      }
      if (zeroPoints) zeroPoints[j * zpPerCol + metaRow / 2] = (zp[0]! & 0xf) | (zp[1]! << 4);
      // MLAS keeps the pair buffer across the thread block: a last odd row packs the stale high nibble.
      const vi = [0, 0];
      for (let i = r; i < rEnd; i += 2) {
        for (let l = 0; l < 2 && i + l < rEnd; l++) {
          const metaR = Math.floor((i + l) / blockSize);
          const scale = scales[j * kBlocks + metaR]!;
          const recip = scale ? f32(1 / scale) : 0;
          const z = zp[metaR % 2]!;
          const q = roundHalfAway(f32(f32(w[(i + l) * N + j]! * recip) + z));
          vi[l] = q < 0 ? 0 : q > 15 ? 15 : q;
        }
        packed[j * qRows + i / 2] = (vi[0]! & 0xf) | ((vi[1]! << 4) & 0xff);
      }
    }
  }
  return { packed, scales, ...(zeroPoints ? { zeroPoints } : {}), kBlocks };
}

// ---------------------------------------------------------------------------------------------
// Graph editing shared by the recipes

/**
 * The MatMuls whose B is a 2-D initializer (what onnxruntime's weight quantizers take), with
 * B; the others go to `report.skipped` with onnxruntime's reason.
 */
function matMulsWithConstB(g: Graph, report: RecipeReport): { node: Node; b: Value; t: Tensor }[] {
  const out: { node: Node; b: Value; t: Tensor }[] = [];
  for (const node of g.nodes()) {
    if (node.opType !== 'MatMul' || node.domain !== '') continue;
    const b = node.input(1)!;
    const t = b.initializer;
    if (!t) report.skipped.push({ node: node.name, reason: "MatMul doesn't have const weight" });
    else if (t.dims.length !== 2) report.skipped.push({ node: node.name, reason: 'MatMul weight is not 2D' });
    else out.push({ node, b, t });
  }
  return out;
}

function floatMatrix(t: Tensor, what: string): Float32Array {
  if (t.dataType !== DataType.FLOAT) throw new Error(`${what}: weight ${t.name} is ${t.describe()}, the recipe takes float32 weights`);
  return t.toFloat32();
}

function scalarInit(g: Graph, name: string, dataType: number, bytes: Uint8Array, dims: number[] = []): Value {
  return g.createInitializer(name, (n) => Tensor.fromBytes(n, dataType, dims, bytes));
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** A name no value or node has yet, left unreserved: the graph claims it when the node is inserted. */
function fresh(g: Graph, stem: string): string {
  const name = g.names.unique(stem);
  g.names.release(name);
  return name;
}

/**
 * Gives `node` (inserted, with one unnamed output) the place of `old`: its output takes over
 * old's output name and consumers, graph outputs included, and `old` is removed.
 */
function replaceNode(g: Graph, old: Node, node: Node): void {
  const out = old.output();
  out.replaceAllUsesWith(node.output(), { outputsToo: true });
  g.remove(old);
  const name = out.name;
  g.names.release(name);
  g.names.release(node.output().name);
  node.output().name = name;
  g.names.reserve(name);
}

/** Inserts `nodes` right after `v`'s producer, or before the graph's first node for inputs and initializers. */
function insertAfterProducer(g: Graph, v: Value, ...nodes: Node[]): void {
  const p = v.producer();
  if (p) g.insertAfter(p, ...nodes);
  else {
    const first = g.nodes()[0];
    if (first) g.insertBefore(first, ...nodes);
    else g.append(...nodes);
  }
}

/** Removes initializers nothing uses any more (`ONNXModel.clean_initializers`). */
function cleanInitializers(g: Graph): void {
  for (const v of g.initializers.values()) if (v.useCount === 0 && !v.isGraphOutput() && !v.isGraphInput()) g.removeInitializer(v);
}

function markProducer(model: Model): void {
  // What onnxruntime's quantizer writes (quant_utils.__producer__, __version__).
  model.producerName = 'onnx.quantize';
  model.producerVersion = '0.1.0';
}

// ---------------------------------------------------------------------------------------------
// quantize_static (QDQ)

/** MinMax ranges of float tensors, float32 min and max over every calibration feed. */
export type TensorRanges = Map<string, { min: number; max: number }>;

/**
 * The tensors `MinMaxCalibrater.select_tensors_to_calibrate` picks: inputs and outputs of the
 * nodes of `opTypes`, float, not initializers.
 */
export function tensorsToCalibrate(model: Model, opTypes: readonly string[]): Value[] {
  const out = new Set<Value>();
  for (const n of model.graph) {
    if (!opTypes.includes(n.opType) || n.domain !== '') continue;
    for (const v of [...n.inputs, ...n.outputs]) {
      if (!v || v.initializer) continue;
      const t = v.elemType();
      // Values without a known type are assumed float: shape inference would find them so.
      if (t === undefined || t === DataType.FLOAT || t === DataType.FLOAT16) out.add(v);
    }
  }
  return [...out];
}

/**
 * `MinMaxCalibrater` (symmetric off, moving average off): runs every feed through the fp32
 * model with the tensors as extra outputs, graph optimizations disabled as its session is,
 * and keeps each tensor's global min and max (NaN ignored, as `np.nanmin`/`nanmax`).
 */
export async function minMaxRanges(model: Model, tensors: readonly Value[], calibration: AsyncIterable<Feeds> | Iterable<Feeds>): Promise<TensorRanges> {
  const ort = await importOnnxruntime('the onnxruntime recipe');
  const aug = augmentModel(model, [...tensors]);
  const ranges: TensorRanges = new Map(tensors.map((v) => [v.name, { min: Infinity, max: -Infinity }]));
  let runs = 0;
  try {
    const session = await ort.InferenceSession.create(aug.path, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
    try {
      for await (const feeds of calibration) {
        const out = await session.run(feeds);
        for (const [name, r] of ranges) {
          const d = out[name]?.data;
          if (!(d instanceof Float32Array)) throw new Error(`calibration: tensor ${name} is not float32 in onnxruntime's output`);
          for (let i = 0; i < d.length; i++) {
            const x = d[i]!;
            if (x < r.min) r.min = x;
            if (x > r.max) r.max = x;
          }
        }
        runs++;
      }
    } finally {
      await session.release();
    }
  } finally {
    aug.dispose();
  }
  if (runs === 0) throw new Error('calibration: the data reader yielded no feeds ("No data is collected.")');
  return ranges;
}

/** What {@link quantizeStaticQdq} takes. */
export interface StaticOptions {
  /** The calibration data reader: model inputs, one record per run. */
  calibration: AsyncIterable<Feeds> | Iterable<Feeds>;
  /** `op_types_to_quantize` (default MatMul and Gemm). */
  opTypes?: readonly string[];
}

/** What a recipe did. */
export interface RecipeReport {
  /** Nodes quantized, by name. */
  nodes: string[];
  /** Activation tensors given a QuantizeLinear/DequantizeLinear pair, with their uint8 parameters. */
  activations?: Map<string, ScaleZeroPoint & { min: number; max: number }>;
  /** Nodes of a quantized op type left as they were, with the reason. */
  skipped: { node: string; reason: string }[];
}

/**
 * `quantize_static(model, reader, quant_format=QDQ, per_channel=True, weight_type=QInt8,
 * activation_type=QUInt8, calibrate_method=MinMax, op_types_to_quantize=opTypes)`.
 *
 * Every MatMul/Gemm gets a QuantizeLinear→DequantizeLinear pair (uint8, asymmetric, MinMax
 * range including 0) on each float input and output that is not an initializer — the
 * activation × activation MatMuls of attention too — and every consumer of such a tensor reads
 * the dequantized value (residual Adds included), as `replace_input_of_all_nodes` does. Weight
 * initializers become int8 per channel (MatMul axis 1, Gemm axis 0 when transB else 1,
 * symmetric, [−127, 127]) behind a DequantizeLinear with `axis`. A Gemm with a bias is refused:
 * onnxruntime quantizes the bias to int32 with a weight-scale adjustment this recipe does not
 * reproduce. Writes `outPath` atomically; the input is not modified.
 */
export async function quantizeStaticQdq(modelPath: string, outPath: string, options: StaticOptions): Promise<RecipeReport> {
  const opTypes = options.opTypes ?? ['MatMul', 'Gemm'];
  const model = loadModel(modelPath);
  const g = model.graph;
  if ((model.opset() ?? 0) < 13) throw new Error(`${modelPath}: opset ${model.opset()}; per-channel QDQ needs opset 13 or above (onnxruntime raises the same)`);
  const targets = g.nodes().filter((n) => n.domain === '' && opTypes.includes(n.opType));
  for (const n of targets) {
    if (n.opType === 'Gemm' && n.input(2)) throw new Error(`${modelPath}: Gemm ${n.name} has a bias; its int32 bias quantization is not reproduced by this recipe`);
    if (n.opType !== 'MatMul' && n.opType !== 'Gemm') throw new Error(`${modelPath}: op type ${n.opType} is not reproduced by this recipe (MatMul and Gemm are)`);
  }
  const tensors = tensorsToCalibrate(model, opTypes);
  const ranges = await minMaxRanges(model, tensors, options.calibration);

  const activations = new Map<string, ScaleZeroPoint & { min: number; max: number }>();
  const weights = new Map<Value, 0 | 1>();
  for (const n of targets) {
    for (const [i, v] of [...n.inputs.entries(), ...n.outputs.map((o, k) => [n.inputs.length + k, o] as const)]) {
      if (!v) continue;
      if (v.initializer) {
        if (i !== 1) continue;
        weights.set(v, n.opType === 'Gemm' && n.intAttr('transB', 0) ? 0 : 1);
      } else if (ranges.has(v.name) && !activations.has(v.name)) {
        const r = ranges.get(v.name)!;
        activations.set(v.name, { ...computeScaleZp(r.min, r.max, 0, 255, false), ...r });
      }
    }
  }
  for (const [name, p] of activations) addActivationQdq(g, g.lookup(name)!, p);
  for (const [w, axis] of weights) addWeightDq(g, w, axis);
  cleanInitializers(g);
  markProducer(model);
  saveModel(model, outPath);
  return { nodes: targets.map((n) => n.name), activations, skipped: [] };
}

/** `_add_qdq_pair_for_activation`: X → QuantizeLinear → DequantizeLinear → every consumer of X. */
function addActivationQdq(g: Graph, x: Value, p: ScaleZeroPoint): void {
  const name = x.name;
  const scale = scalarInit(g, `${name}_scale`, DataType.FLOAT, bytesOf(Float32Array.of(p.scale)));
  const zp = scalarInit(g, `${name}_zero_point`, DataType.UINT8, Uint8Array.of(p.zeroPoint));
  const uses = x.uses();
  const graphOutput = x.isGraphOutput();
  if (graphOutput) {
    // onnxruntime renames the producer's output and lets the DequantizeLinear write the graph output.
    g.names.release(name);
    x.name = g.names.unique(`${name}_QuantizeLinear_Input`);
  }
  const q = new Node({ opType: 'QuantizeLinear', name: fresh(g, `${name}_QuantizeLinear`), inputs: [x, scale, zp], outputs: [fresh(g, `${name}_QuantizeLinear_Output`)] });
  const dq = new Node({ opType: 'DequantizeLinear', name: fresh(g, `${name}_DequantizeLinear`), inputs: [q.output(), scale, zp], outputs: [graphOutput ? name : fresh(g, `${name}_DequantizeLinear_Output`)] });
  insertAfterProducer(g, x, q, dq);
  for (const u of uses) u.node.setInput(u.inputIndex, dq.output());
  if (graphOutput) g.outputs.forEach((o, i) => o === x && g.setOutput(i, dq.output()));
}

/** `_add_qdq_pair_for_initializer` per channel: int8 weight → DequantizeLinear(axis) → every consumer. */
function addWeightDq(g: Graph, w: Value, axis: 0 | 1): void {
  const t = w.initializer!;
  if (t.dims.length !== 2) throw new Error(`weight ${w.name}: ${t.describe()}; the recipe quantizes 2-D weights`);
  const [rows, cols] = t.dims as [number, number];
  const q = quantizeInt8PerChannel(floatMatrix(t, w.name), rows, cols, axis);
  const channels = q.scales.length;
  const qw = scalarInit(g, `${w.name}_quantized`, DataType.INT8, bytesOf(q.data), [rows, cols]);
  const scale = scalarInit(g, `${w.name}_scale`, DataType.FLOAT, bytesOf(q.scales), [channels]);
  const zp = scalarInit(g, `${w.name}_zero_point`, DataType.INT8, new Uint8Array(channels), [channels]);
  const uses = w.uses();
  const dq = new Node({ opType: 'DequantizeLinear', name: fresh(g, `${w.name}_DequantizeLinear`), inputs: [qw, scale, zp], outputs: [fresh(g, `${w.name}_DequantizeLinear_Output`)], attributes: [attr.int('axis', axis)] });
  // Before the first node: a weight shared by several nodes must be dequantized before any of them.
  insertAfterProducer(g, w, dq);
  for (const u of uses) u.node.setInput(u.inputIndex, dq.output());
}

// ---------------------------------------------------------------------------------------------
// quantize_dynamic (IntegerOps)

/**
 * `quantize_dynamic(model, out, weight_type=QInt8, op_types_to_quantize=['MatMul'])`
 * (per_channel off, reduce_range off, MatMulConstBOnly on): each MatMul whose B is an
 * initializer becomes DynamicQuantizeLinear(A) (uint8) → MatMulInteger(A_q, B_q, A_zp, B_zp)
 * → Cast(float) → Mul(·, A_scale · B_scale), with B int8 per tensor, symmetric. onnxruntime's
 * graph optimizer fuses the chain into DynamicQuantizeMatMul at load time.
 */
export function quantizeDynamicInt8(modelPath: string, outPath: string): RecipeReport {
  const model = loadModel(modelPath);
  const g = model.graph;
  const report: RecipeReport = { nodes: [], skipped: [] };
  const quantized = new Map<Value, { q: Value; scale: Value; zp: Value }>();
  const activations = new Map<Value, Node>();
  for (const { node: n, b, t } of matMulsWithConstB(g, report)) {
    let wq = quantized.get(b);
    if (!wq) {
      const q = quantizeInt8PerTensor(floatMatrix(t, n.name));
      wq = {
        q: scalarInit(g, `${b.name}_quantized`, DataType.INT8, bytesOf(q.data), [...t.dims]),
        scale: scalarInit(g, `${b.name}_scale`, DataType.FLOAT, bytesOf(q.scales)),
        zp: scalarInit(g, `${b.name}_zero_point`, DataType.INT8, new Uint8Array(1)),
      };
      quantized.set(b, wq);
    }
    const a = n.input(0)!;
    let aq = activations.get(a);
    if (!aq) {
      // One DynamicQuantizeLinear per tensor, shared by its MatMuls (quantized_value_map).
      aq = new Node({ opType: 'DynamicQuantizeLinear', name: fresh(g, `${a.name}_QuantizeLinear`), inputs: [a], outputs: ['_quantized', '_scale', '_zero_point'].map((s) => fresh(g, a.name + s)) });
      insertAfterProducer(g, a, aq);
      activations.set(a, aq);
    }
    const base = n.name || `${a.name}_MatMul`;
    const out = n.output();
    const mmi = new Node({ opType: 'MatMulInteger', name: fresh(g, `${base}_quant`), inputs: [aq.output(0), wq.q, aq.output(2), wq.zp], outputs: [fresh(g, `${out.name}_output_quantized`)] });
    const cast = new Node({ opType: 'Cast', name: fresh(g, `${out.name}_output_quantized_cast`), inputs: [mmi.output()], outputs: [fresh(g, `${out.name}_output_quantized_cast_output`)], attributes: [attr.int('to', DataType.FLOAT)] });
    const scales = new Node({ opType: 'Mul', name: fresh(g, `${base}_quant_scales_mul`), inputs: [aq.output(1), wq.scale], outputs: [fresh(g, `${base}_quant_scales_mul:0`)] });
    const mul = new Node({ opType: 'Mul', name: fresh(g, `${base}_quant_output_scale_mul`), inputs: [cast.output(), scales.output()], outputs: 1 });
    g.insertBefore(n, mmi, cast, scales, mul);
    replaceNode(g, n, mul);
    report.nodes.push(n.name);
  }
  cleanInitializers(g);
  markProducer(model);
  saveModel(model, outPath);
  return report;
}

// ---------------------------------------------------------------------------------------------
// MatMulNBitsQuantizer (DefaultWeightOnlyQuantConfig, QOperator)

/** What {@link quantizeMatMulNBits} takes; the defaults are the Python class's. */
export interface NBitsOptions {
  /** `block_size` (Python default 128; the issues use 32). */
  blockSize?: number;
  /** `is_symmetric` (Python API default False; note its command line defaults to True). */
  isSymmetric?: boolean;
  /** `accuracy_level` (Python default None: the attribute is not written). */
  accuracyLevel?: number;
}

/**
 * `MatMulNBitsQuantizer(model, block_size, is_symmetric, accuracy_level).process()` with the
 * default algorithm (RTN blockwise, `DefaultWeightOnlyQuantConfig`, QOperator format, 4 bits,
 * op types {MatMul}): each MatMul whose B is a 2-D initializer becomes
 * `com.microsoft.MatMulNBits(A, B_Q4, B_scales[, B_zero_points])` with K, N, bits 4,
 * block_size and (when given and non-zero) accuracy_level; other MatMuls and every Gemm stay
 * float. Adds the `com.microsoft` opset 1 import and removes the unused float weights.
 */
export function quantizeMatMulNBits(modelPath: string, outPath: string, options: NBitsOptions = {}): RecipeReport {
  const blockSize = options.blockSize ?? 128;
  const symmetric = options.isSymmetric ?? false;
  const model = loadModel(modelPath);
  const g = model.graph;
  model.opsetImports.set('com.microsoft', 1);
  const report: RecipeReport = { nodes: [], skipped: [] };
  for (const { node: n, b, t } of matMulsWithConstB(g, report)) {
    const [K, N] = t.dims as [number, number];
    const q = quantizeBlockwise4(floatMatrix(t, n.name), K, N, blockSize, symmetric);
    // onnxruntime names them after the weight; a weight shared by two MatMuls is quantized twice, as there.
    const inputs: Value[] = [
      n.input(0)!,
      scalarInit(g, `${b.name}_Q4`, DataType.UINT8, q.packed, [N, q.kBlocks, blockSize / 2]),
      scalarInit(g, `${b.name}_scales`, DataType.FLOAT, bytesOf(q.scales), [N * q.kBlocks]),
    ];
    if (q.zeroPoints) inputs.push(scalarInit(g, `${b.name}_zero_points`, DataType.UINT8, q.zeroPoints, [q.zeroPoints.length]));
    const attrs = [attr.int('K', K), attr.int('N', N), attr.int('bits', 4), attr.int('block_size', blockSize)];
    if (options.accuracyLevel) attrs.push(attr.int('accuracy_level', options.accuracyLevel));
    const mm = new Node({ opType: 'MatMulNBits', domain: 'com.microsoft', name: fresh(g, n.name ? `${n.name}_Q4` : 'MatMulNBits'), inputs, outputs: 1, attributes: attrs });
    g.insertAfter(n, mm);
    replaceNode(g, n, mm);
    report.nodes.push(n.name);
  }
  cleanInitializers(g);
  saveModel(model, outPath);
  return report;
}

// ---------------------------------------------------------------------------------------------
// Calibration data from a calibration module

/**
 * The calibration data reader of a rollout (or feeds) module: runs every sample of the module
 * (its prompts, its seeded noise) on the fp32 model, graph optimizations disabled, and returns
 * a copy of the inputs of every model call — what a user of onnxruntime's Python quantizer
 * would record from fp32 rollouts and hand to `quantize_static`.
 */
export async function recordCalibrationFeeds(modelPath: string, modulePath: string): Promise<Feeds[]> {
  const ort = await importOnnxruntime('the onnxruntime recipe');
  const calib = await loadCalibrationModule(modulePath);
  const session = await ort.InferenceSession.create(modelPath, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  const recorded: Feeds[] = [];
  try {
    for (let sample = 0; sample < calib.samples; sample++) {
      await drawSample(calib, contextFor(calib, sample), async (feeds) => {
        // A rollout may reuse its buffers between calls: keep copies.
        recorded.push(Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.type as 'float32', (t.data as Float32Array).slice(), t.dims)])));
        return (await session.run(feeds)) as Record<string, ortTypes.Tensor>;
      });
    }
  } finally {
    await session.release();
  }
  return recorded;
}
