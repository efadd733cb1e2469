/**
 * SmoothQuant-style channel smoothing (SmoothQuant, Xiao et al. 2023; QVD's SCRI is the same
 * equivalent transformation): before quantization, input channel k of a layer group is
 * divided by `s_k` and row k of each weight is multiplied by it, so `Y = (X·diag(1/s))·(diag(s)·W)`
 * is unchanged while the per-tensor activation range shrinks:
 * `s_k = max|X_k|^α / max|W_k|^(1−α)` over the calibration data and every layer of the group.
 *
 * Why not powers of two (which would make the smoothed float model bit-identical): on
 * stories260K W8A8 the rounding to 2^e left the relative logit error at 0.018–0.020 against
 * 0.013–0.016 with exact factors, across four calibration sets. The float model moves by
 * float32 rounding only.
 *
 * In the graph: `1/s` folded into the producer of each smoothed input when it is a
 * LayerNormalization or a Mul by a constant vector (smooth-fold.ts), else one `Mul(X, 1/s)`
 * shared by the layers reading it (e.g. q, k and v); and a new float32 weight per layer.
 * Layers that cannot take a new weight (a Gemm behind a Cast/Transpose chain) keep reading
 * `X` and are left out of the group.
 */
import type { Graph } from '../../graph/ir/graph.ts';
import { DataType } from '../../graph/ir/dtype.ts';
import type { Model } from '../../graph/ir/model.ts';
import { Node } from '../../graph/ir/node.ts';
import { Tensor } from '../../graph/ir/tensor.ts';
import type { Value } from '../../graph/ir/value.ts';
import { tensorAsFloat32, weightMatrix, weightRowAbsMax } from './layer-weights.ts';
import type { LinearLayer } from './linear-layers.ts';
import type { ActivationRanges } from './quantize-layers.ts';
import { removeUnused } from './rewire.ts';
import { foldSmoothing } from './smooth-fold.ts';

/** Default migration strength α (SmoothQuant's and onnxruntime's default). */
export const DEFAULT_SMOOTH_ALPHA = 0.5;

/** Factors are clamped to [1/MAX_FACTOR, MAX_FACTOR]: far from float32 overflow and underflow. */
const MAX_FACTOR = 2 ** 20;

/** The smoothing of one layer input: the layers reading it, and `s_k` per channel (float32 values). */
export interface SmoothingGroup {
  /** Name of the smoothed value in the original graph. */
  input: string;
  layers: string[];
  factors: number[];
}

/** What smoothing did (the calibration table and the report keep it). */
export interface Smoothing {
  alpha: number;
  groups: SmoothingGroup[];
}

/** Whether a layer's weight can be replaced by a smoothed float32 copy. */
function canSmooth(layer: LinearLayer): boolean {
  if (layer.op === 'MatMul') return true;
  // A Gemm keeps its alpha/transB attributes: the new weight must have the stored layout.
  return layer.chain.length === 0 && layer.weight.dataType === DataType.FLOAT;
}

/** The layers to smooth, grouped by the input they read (graph order). */
export function smoothingGroups(layers: LinearLayer[]): Map<Value, LinearLayer[]> {
  const groups = new Map<Value, LinearLayer[]>();
  for (const l of layers) {
    if (!canSmooth(l)) continue;
    const elem = l.input.elemType();
    if (elem !== undefined && elem !== DataType.FLOAT) continue;
    const g = groups.get(l.input) ?? [];
    g.push(l);
    groups.set(l.input, g);
  }
  return groups;
}

/**
 * The factors of each group from calibrated per-channel activation ranges.
 * @param ranges per layer, per-channel min/max of its input (all layers of a group share them)
 */
export function smoothingFactors(layers: LinearLayer[], ranges: ActivationRanges, alpha: number): Smoothing {
  if (!(alpha > 0 && alpha < 1)) throw new Error(`smooth-alpha must be between 0 and 1 (exclusive), got ${alpha}`);
  const groups: SmoothingGroup[] = [];
  for (const [input, members] of smoothingGroups(layers)) {
    const K = members[0]!.K;
    const r = ranges.get(members[0]!.name);
    if (!r) throw new Error(`smoothing: no activation ranges for layer ${members[0]!.name}`);
    const wMax = new Float64Array(K);
    for (const l of members) {
      const rows = weightRowAbsMax(l);
      for (let k = 0; k < K; k++) if (rows[k]! > wMax[k]!) wMax[k] = rows[k]!;
    }
    const factors = new Array<number>(K);
    for (let k = 0; k < K; k++) {
      const xMax = Math.max(Math.abs(r.min[k]!), Math.abs(r.max[k]!));
      // A channel that is always zero (or a zero weight row) has nothing to balance.
      const s = xMax > 0 && wMax[k]! > 0 && Number.isFinite(xMax) ? xMax ** alpha / wMax[k]! ** (1 - alpha) : 1;
      factors[k] = Math.fround(Math.max(1 / MAX_FACTOR, Math.min(MAX_FACTOR, s)));
    }
    if (factors.every((f) => f === 1)) continue;
    groups.push({ input: input.name, layers: members.map((l) => l.name), factors });
  }
  return { alpha, groups };
}

/**
 * Rewrites the graph with the given smoothing: per group `1/s` folded into the input's
 * producer (see smooth-fold.ts) or else a `Mul` by `1/s` on the input, and each layer's
 * weight rows multiplied by `s` (new float32 initializers; the old weights go when
 * nothing else uses them — a tied embedding keeps its own). Checks that the groups match the
 * graph (the same layers read the named input, with as many channels), naming what differs.
 * @param origin what the smoothing came from, for error messages
 */
export function applySmoothing(model: Model, layers: LinearLayer[], smoothing: Smoothing, origin: string): { folded: number; inserted: number } {
  const g = model.graph;
  let folded = 0;
  const byName = new Map(layers.map((l) => [l.name, l]));
  const order = new Map(g.nodes().map((n, i) => [n, i]));
  for (const group of smoothing.groups) {
    const members = group.layers.map((name) => {
      const l = byName.get(name);
      if (!l) throw new Error(`${origin}: smoothing names layer ${name}, which this model does not have (or does not quantize)`);
      if (l.input.name !== group.input) throw new Error(`${origin}: smoothing expects layer ${name} to read ${group.input}, it reads ${l.input.name}`);
      if (l.K !== group.factors.length) throw new Error(`${origin}: smoothing of ${group.input} has ${group.factors.length} channels, layer ${name} has ${l.K}`);
      if (!canSmooth(l)) throw new Error(`${origin}: layer ${name}'s weight cannot be smoothed (a Gemm weight behind ${l.chain.map((n) => n.opType).join('/')})`);
      return l;
    });
    const input = members[0]!.input;
    const inverse = Float32Array.from(group.factors, (f) => 1 / f);
    let smoothed = input;
    if (foldSmoothing(g, input, new Set(members.map((l) => l.node)), inverse)) folded++;
    else {
      const scale = g.createInitializer(`${group.input}_smooth_scale`, (n) => Tensor.fromFloat32(n, [inverse.length], inverse));
      const mul = new Node({ opType: 'Mul', domain: '', nameHint: `${members[0]!.name}/SmoothQuant`, inputs: [input, scale], metadata: { 'qarvd.smoothing': group.input } });
      const first = members.reduce((a, b) => (order.get(a.node)! <= order.get(b.node)! ? a : b));
      g.insertBefore(first.node, mul);
      smoothed = mul.output(0);
    }
    const factors = Float32Array.from(group.factors);
    for (const l of members) rewireLayer(g, l, smoothed, factors);
  }
  return { folded, inserted: smoothing.groups.length - folded };
}

/** Points one layer at the smoothed input and a weight whose row k is multiplied by `s_k`. */
function rewireLayer(g: Graph, layer: LinearLayer, smoothed: Value, s: Float32Array): void {
  const { K, N } = layer;
  const old = layer.node.input(1)!;
  // MatMul: the [K, N] float32 form (any Cast/Transpose chain folded; MatMul has no alpha).
  // Gemm: the stored layout, so alpha and transB keep their meaning.
  const gemmTransposed = layer.op === 'Gemm' && layer.transposed;
  const data = layer.op === 'MatMul' ? weightMatrix(layer) : tensorAsFloat32(layer.weight).slice();
  const dims = layer.op === 'MatMul' ? [K, N] : [...layer.weight.dims];
  for (let i = 0; i < data.length; i++) data[i] = data[i]! * s[gemmTransposed ? i % K : Math.floor(i / N)]!;
  const weight = g.createInitializer(`${layer.weightValue.name}_smoothed`, (n) => Tensor.fromFloat32(n, dims, data));
  layer.node.setInput(0, smoothed);
  layer.node.setInput(1, weight);
  removeUnused(g, new Set([old]));
}

/**
 * The smoothing a calibration table was made with, checked against this run's options (a
 * table's scales only apply to the model smoothed the same way) and for well-formedness.
 */
export function smoothingOfTable(table: { smoothing?: unknown }, options: { smoothQuant?: boolean; smoothAlpha?: number }, origin: string): Smoothing | undefined {
  const fail = (what: string): never => {
    throw new Error(`calibration table ${origin}: ${what}`);
  };
  const s = table.smoothing as Smoothing | undefined;
  if (!options.smoothQuant) {
    if (s) fail(`was made with smooth-quant (α ${s.alpha}); give smooth-quant too, or calibrate again without it`);
    return undefined;
  }
  if (!s) return fail('was made without smooth-quant; drop smooth-quant, or calibrate again with it (save-calibration)');
  const alpha = options.smoothAlpha ?? DEFAULT_SMOOTH_ALPHA;
  if (s.alpha !== alpha) fail(`was made with smooth-alpha ${s.alpha}, this run has ${alpha}`);
  if (!Array.isArray(s.groups)) fail('smoothing has no groups');
  for (const g of s.groups) {
    const ok = typeof g?.input === 'string' && Array.isArray(g.layers) && g.layers.every((l) => typeof l === 'string') && Array.isArray(g.factors) && g.factors.every((f) => typeof f === 'number' && f >= 1 / MAX_FACTOR && f <= MAX_FACTOR);
    if (!ok) fail(`smoothing group ${JSON.stringify(g?.input ?? g)} is malformed (want input, layers and factors within [2^-20, 2^20])`);
  }
  return s;
}

/** What the report says about smoothing: α, how much was smoothed, and the factors' range. */
export function smoothingSummary(s: Smoothing): { alpha: number; inputs: number; layers: number; factorRange: [number, number] } {
  const all = s.groups.flatMap((g) => g.factors);
  return {
    alpha: s.alpha,
    inputs: s.groups.length,
    layers: s.groups.reduce((n, g) => n + g.layers.length, 0),
    factorRange: all.length ? [Math.min(...all), Math.max(...all)] : [0, 0],
  };
}
