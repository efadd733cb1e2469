import { DataType, dtypeName } from '../../graph/ir/dtype.ts';
import type { Graph } from '../../graph/ir/graph.ts';
import type { Node } from '../../graph/ir/node.ts';
import type { Tensor } from '../../graph/ir/tensor.ts';
import type { Value } from '../../graph/ir/value.ts';
import { selectedByGlobs } from './glob.ts';
import { modulePath, repeatedStacks, stackOf } from './repeated-blocks.ts';

/** A constant bias added to a linear layer's output (from a following Add or Gemm's C). */
export interface LayerBias {
  tensor: Tensor;
  /** The value holding the tensor (an initializer, or a Constant node's output). */
  value: Value;
  /** `Identity` nodes between that value and the layer, nearest first (an exporter's de-duplicated equal biases read one initializer through them). */
  chain: Node[];
  /** Multiplier (Gemm's beta; 1 for an Add). */
  scale: number;
  /** The Add node folded into the layer, when the bias came from one. */
  addNode?: Node;
}

/** A linear layer `Y = X·W (+ b)` whose weight is constant. */
export interface LinearLayer {
  node: Node;
  /** The node's name, or a generated label when it has none. */
  name: string;
  op: 'MatMul' | 'Gemm';
  input: Value;
  /** The constant at the root of the weight chain (initializer or Constant output). */
  weightValue: Value;
  weight: Tensor;
  /** Nodes between the constant and the layer (Transpose, Cast, Identity), nearest first. */
  chain: Node[];
  /** True when the stored weight is `[N, K]` (Gemm transB=1, or a Transpose in the chain). */
  transposed: boolean;
  /** Element type of the stored weight (f32, or f16/bf16 behind a Cast). */
  storedType: number;
  K: number;
  N: number;
  /** Gemm's alpha, folded into the weight; 1 for MatMul. */
  alpha: number;
  bias?: LayerBias;
  /** The value the layer (with its folded bias) produces. */
  output: Value;
  /**
   * 8 when this layer's weights take 8 bits whatever the pass's weight bits (`scope outer-w8`:
   * a layer outside the repeated blocks); absent: the pass's bits. See `layerConfig`.
   */
  wBits?: 8;
}

/** The skip reason of a MatMul/Gemm whose weight is dequantized from integers: a quantized model's layer. */
export const ALREADY_QUANTIZED = 'weight is already quantized (computed from integer constants: DequantizeLinear, or Cast/Sub/Mul)';

const INTEGER_WEIGHT_TYPES: readonly number[] = [DataType.INT8, DataType.UINT8, DataType.INT4, DataType.UINT4];

/**
 * Whether `v` is computed from constants alone, one of them 8- or 4-bit integers: a weight a
 * quantizer stored as integers and dequantizes in the graph (a DequantizeLinear, or the
 * Cast → Sub → Mul a float-compute layer uses). Looks at most a few nodes back.
 */
function computedFromIntegers(v: Value): boolean {
  let integers = false;
  const seen = new Set<Value>();
  const visit = (x: Value, depth: number): boolean => {
    if (seen.has(x)) return true;
    seen.add(x);
    const t = x.constTensor();
    if (t) {
      if (INTEGER_WEIGHT_TYPES.includes(t.dataType)) integers = true;
      return true;
    }
    const p = x.producer();
    if (!p || depth > 6 || p.inputs.length === 0) return false;
    return p.inputs.every((i) => !i || visit(i, depth + 1));
  };
  return visit(v, 0) && integers;
}

/** onnxruntime's and ONNX's integer matrix-product ops: a layer a quantizer already rewrote. */
export const INTEGER_MATMUL_OPS: ReadonlySet<string> = new Set(['MatMulNBits', 'MatMulIntegerToFloat', 'DynamicQuantizeMatMul', 'QLinearMatMul', 'MatMulInteger', 'QGemm']);

/** A MatMul or Gemm that will not be quantized, with the reason for the report. */
export interface SkippedLayer {
  node: Node;
  name: string;
  op: string;
  reason: string;
  K?: number;
  N?: number;
}

/** Options shared by the quantization passes and `convert inspect`. */
export interface LayerSelection {
  include?: readonly string[];
  exclude?: readonly string[];
  /** Smallest input-channel count worth quantizing (default {@link DEFAULT_MIN_K}). */
  minK?: number;
  /** Only these node names (a stage of sequential reconstruction), on top of include/exclude. */
  names?: ReadonlySet<string>;
  /**
   * `blocks`: only the layers inside the model's repeated blocks (repeated-blocks.ts); the
   * layers around them (embeddings, time and text projections, the head) stay float. When the
   * names show no repeated blocks every layer stays selected (the caller says so). Default `all`.
   */
  scope?: LayerScope;
  /**
   * `scope outer-w8`: the layers outside the repeated blocks, as found on the model as given.
   * Later calls on a partly rewritten model (S1's copy, sequential stages) pass it on, where
   * the float layers left would no longer show the blocks.
   */
  outer?: ReadonlySet<string>;
}

/**
 * Which layers a quantization pass considers, and at what weight bits: `all` every layer at
 * the pass's bits; `blocks` only those inside the repeated blocks; `outer-w8` every layer, those
 * outside the repeated blocks with 8-bit weights (the first and last layers at 8 bits, as
 * low-bit quantization work commonly keeps them, e.g. LSQ: docs/error-propagation.md).
 */
export type LayerScope = 'all' | 'blocks' | 'outer-w8';

/**
 * Below 16 input channels a per-output-channel scale serves so few values that the scale
 * tensors and Q/DQ nodes cost more than the int8 weights save, and the accuracy loss of an
 * 8-bit activation grid is not repaid.
 */
export const DEFAULT_MIN_K = 16;

const FLOAT_TYPES: readonly number[] = [DataType.FLOAT, DataType.FLOAT16, DataType.BFLOAT16];

/**
 * Finds the linear layers of a graph (not its subgraphs). Rules:
 * 1. `MatMul(X, W)` and `Gemm(X, W, C?)` with `transA = 0` are candidates.
 * 2. W is followed back through `Identity`, `Cast` (to float32) and `Transpose` (perm [1, 0])
 *    to a constant (initializer or Constant node); a non-constant W (attention QK/AV) is skipped.
 * 3. The constant must be a 2-D float32 tensor, or float16/bfloat16 behind a Cast to float32.
 * 4. A bias is folded in: Gemm's C (times beta), or the only user of the output being an
 *    `Add` of a constant broadcastable to `[N]` — unless the output is a graph output.
 * 5. K below `minK`, and names filtered out by include/exclude, are skipped.
 * 6. A weight used elsewhere is quantized only when every use is a candidate layer that reads
 *    it the same way (then it is quantized once); otherwise all its layers are skipped.
 */
export function findLinearLayers(graph: Graph, selection: LayerSelection = {}): { layers: LinearLayer[]; skipped: SkippedLayer[]; stacks?: string[] } {
  const { include = [], exclude = [], minK = DEFAULT_MIN_K } = selection;
  const layers: LinearLayer[] = [];
  const skipped: SkippedLayer[] = [];
  let unnamed = 0;
  const results: (LinearLayer | SkippedLayer)[] = [];
  for (const node of graph) {
    if (node.domain !== '' || (node.opType !== 'MatMul' && node.opType !== 'Gemm')) continue;
    results.push(matchLayer(node, node.name || `${node.opType}_${unnamed++}`));
  }
  // The blocks are read from every linear layer's name, whatever else filters it. A stage of
  // sequential calibration names its layers (chosen from the scoped list): on a partly
  // rewritten model the float layers left would no longer show the blocks.
  const scoped = selection.scope === 'blocks' || (selection.scope === 'outer-w8' && !selection.outer);
  const stacks = scoped && !selection.names ? repeatedStacks(results.filter((r) => !('reason' in r)).map((r) => modulePath(r.node, r.name))) : undefined;
  const blocks = selection.scope === 'blocks' ? stacks : undefined;
  const outer = (l: LinearLayer): boolean => (selection.outer ? selection.outer.has(l.name) : Boolean(stacks?.size) && !stackOf(modulePath(l.node, l.name), stacks!));
  for (const result of results) {
    if ('reason' in result) {
      skipped.push(result);
      continue;
    }
    const name = result.name;
    if (result.K < minK) skipped.push(skip(result, `K = ${result.K} is below min-k ${minK}`));
    else if (!selectedByGlobs(name, include, exclude)) skipped.push(skip(result, 'not selected by include/exclude'));
    else if (blocks?.size && !stackOf(modulePath(result.node, name), blocks)) skipped.push(skip(result, 'outside the repeated blocks (scope blocks)'));
    else layers.push(selection.scope === 'outer-w8' && outer(result) ? { ...result, wBits: 8 } : result);
  }
  const found = rejectSharedWeights(layers, skipped);
  // A stage's names apply after the shared-weight check: a weight the stage shares with a later
  // stage's layer (blocks tied to one weight) is not a foreign use of it.
  if (selection.names) {
    const names = selection.names;
    for (const l of found.layers) if (!names.has(l.name)) found.skipped.push(skip(l, 'not in this stage'));
    found.layers = found.layers.filter((l) => names.has(l.name));
  }
  return { ...found, ...(stacks ? { stacks: [...stacks] } : {}) };
}

/**
 * The Conv/ConvTranspose nodes of `graph` (not its subgraphs) with a constant weight: linear maps
 * too (Wan2.1's Conv3d patch embedding), which the passes leave float and say so.
 */
export function constantWeightConvs(graph: Graph): Node[] {
  return [...graph].filter((n) => n.domain === '' && (n.opType === 'Conv' || n.opType === 'ConvTranspose') && Boolean(n.input(1)?.constTensor()));
}

/** The skip reason of a MatMul/Gemm whose second operand is computed (attention's QK/AV): nothing to quantize. */
export const NOT_CONSTANT = 'weight is not constant (activation × activation, e.g. attention QK/AV)';

/**
 * Why a quantization pass that selected no layer should stop rather than write the model
 * unchanged: when every MatMul/Gemm was skipped and at least one of them holds a constant
 * weight (an fp16 model, W·X, initializers exported as inputs, an already quantized model, a
 * selection that matches nothing), the message names how many were skipped for what, with the
 * first layer of each reason; when the graph has no MatMul/Gemm with a constant operand at all
 * (only Convs, only attention's activation products), it says so. Undefined when layers were
 * selected.
 */
export function nothingSelectedReason(found: { layers: readonly LinearLayer[]; skipped: readonly SkippedLayer[] }, graph?: Graph): string | undefined {
  if (found.layers.length > 0) return undefined;
  // A user trial: a Conv-only model was "quantized" with exit 0 and written unchanged.
  if (found.skipped.every((s) => s.reason === NOT_CONSTANT)) {
    const nodes = graph ? [...graph] : [];
    // A model quantized with qoperator keeps no float layer (review): say that, not "no layer".
    const integer = nodes.filter((n) => INTEGER_MATMUL_OPS.has(n.opType));
    if (integer.length) return `no layer to quantize: the model is quantized already (${integer.length} integer MatMul node(s), first: ${integer[0]!.label()}); quantize the float model`;
    const inner = nodes.flatMap((n) => n.subgraphs().flatMap((g) => [...g.allNodes()].filter((m) => m.opType === 'MatMul' || m.opType === 'Gemm')));
    const products = found.skipped.length ? ` (${found.skipped.length} MatMul/Gemm node(s), all activation × activation products, e.g. attention QK/AV)` : '';
    const nested = inner.length ? `; the ${inner.length} MatMul/Gemm node(s) inside If/Loop subgraphs are not quantized` : '';
    return `no layer to quantize: the model's main graph has no MatMul or Gemm node with a constant weight${products}${nested}; the passes quantize MatMul and Gemm layers only`;
  }
  // Reasons name their tensor and sizes: one group per reason with names and numbers taken out.
  const groups = new Map<string, SkippedLayer[]>();
  const candidates = found.skipped.filter((s) => s.reason !== NOT_CONSTANT);
  for (const s of candidates) {
    const key = s.reason.replace(/\b(weight|constant|tensor) \S+/g, '$1 …').replace(/\d+/g, '#');
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  const listed = [...groups.values()].sort((a, b) => b.length - a.length).slice(0, 3);
  const more = groups.size > listed.length ? `; and ${groups.size - listed.length} other reason(s)` : '';
  const products = found.skipped.length - candidates.length;
  const besides = products ? ` (besides ${products} activation × activation product(s))` : '';
  return `no layer to quantize: all ${candidates.length} MatMul/Gemm node(s) with a constant operand were skipped${besides} — ${listed.map((g) => `${g.length} × ${g[0]!.reason} (first: ${g[0]!.name})`).join('; ')}${more}`;
}

function skip(l: LinearLayer, reason: string): SkippedLayer {
  return { node: l.node, name: l.name, op: l.op, reason, K: l.K, N: l.N };
}

function matchLayer(node: Node, name: string): LinearLayer | SkippedLayer {
  const op = node.opType as 'MatMul' | 'Gemm';
  const x = node.input(0);
  const b = node.input(1);
  const skipped = (reason: string): SkippedLayer => ({ node, name, op, reason });
  if (!x || !b) return skipped('missing input');
  let transposed = false;
  let alpha = 1;
  if (op === 'Gemm') {
    if (node.intAttr('transA', 0) !== 0) return skipped('Gemm with transA = 1');
    transposed = node.intAttr('transB', 0) === 1;
    alpha = node.floatAttr('alpha', 1);
  }
  const chain: Node[] = [];
  let root: Value = b;
  let viaCast = false;
  let badTranspose = false;
  for (;;) {
    const p = root.producer();
    if (!p || p.domain !== '' || root.constTensor()) break;
    if (p.opType === 'Identity') {
      chain.push(p);
    } else if (p.opType === 'Cast' && p.intAttr('to', 0) === DataType.FLOAT) {
      chain.push(p);
      viaCast = true;
    } else if (p.opType === 'Transpose') {
      const perm = p.intsAttr('perm');
      if (perm && !(perm.length === 2 && perm[0] === 1 && perm[1] === 0)) badTranspose = true;
      chain.push(p);
      transposed = !transposed;
    } else break;
    const next = p.input(0);
    if (!next) break;
    root = next;
  }
  const w = root.constTensor();
  if (!w && computedFromIntegers(root)) return skipped(ALREADY_QUANTIZED);
  if (!w) return skipped(notConstantReason(node, root));
  if (badTranspose) return skipped(`weight ${root.name} is behind a Transpose that is not a 2-D swap`);
  if (w.dims.length !== 2) return skipped(`weight ${root.name} is ${w.dims.length}-D, not a 2-D matrix`);
  if (!FLOAT_TYPES.includes(w.dataType)) return skipped(`weight ${root.name} is ${dtypeName(w.dataType)}`);
  if (w.dataType !== DataType.FLOAT && !viaCast) return skipped(`weight ${root.name} is ${dtypeName(w.dataType)} without a Cast to float32 (fp16 models are not supported yet)`);
  const [d0, d1] = w.dims as [number, number];
  const K = transposed ? d1 : d0;
  const N = transposed ? d0 : d1;
  const layer: LinearLayer = { node, name, op, input: x, weightValue: root, weight: w, chain, transposed, storedType: w.dataType, K, N, alpha, output: node.output(0) };
  const bias = findBias(node, op, N);
  if (typeof bias === 'string') return skipped(bias);
  if (bias) {
    layer.bias = bias;
    if (bias.addNode) layer.output = bias.addNode.output(0);
  }
  return layer;
}

/**
 * Why a layer's second operand, followed back to `root`, is not a constant weight: the common
 * exports whose weights are constant but reach the layer in a form the passes do not quantize
 * are named, so the report says what to change rather than "activation × activation".
 */
function notConstantReason(node: Node, root: Value): string {
  if (root.initializer && root.isGraphInput()) {
    return `weight ${root.name} is an initializer that is also a graph input (an export with keep_initializers_as_inputs=True), so a caller may replace it at run time; re-export without that option to quantize it`;
  }
  const p = root.producer();
  const cast = p && p.domain === '' && p.opType === 'Cast' ? constantThrough(p.input(0), ['Identity', 'Transpose', 'Cast'])?.value : undefined;
  if (p && cast) {
    return `weight ${cast.name} reaches the layer through a Cast to ${dtypeName(p.intAttr('to', 0))} (float16 compute, as torch autocast exports it); only float32 layers are quantized`;
  }
  if (node.input(0)?.constTensor()) {
    return `the constant ${node.input(0)!.name} is the first operand (W·X); only X·W layers (the constant second) are quantized`;
  }
  if (root.isGraphInput() && !root.initializer && looksLikeUnexportedWeight(root)) {
    return `weight ${root.name} is a graph input with no value in the model (an export with export_params=False); re-export with the parameters to quantize it`;
  }
  const from = p ? constantSubgraphOp(root) : undefined;
  if (from) {
    return `weight ${root.name} is computed from constants by ${from} (an export without constant folding, e.g. weight_norm's g·v/‖v‖); re-export with do_constant_folding=True to quantize it`;
  }
  return NOT_CONSTANT;
}

/** Ops that make a weight computed from constants something other than an unfolded export: quantization, randomness. */
const NOT_FOLDABLE = new Set(['DequantizeLinear', 'QuantizeLinear', 'DynamicQuantizeLinear', 'RandomNormal', 'RandomNormalLike', 'RandomUniform', 'RandomUniformLike', 'Multinomial', 'Bernoulli']);

/**
 * A graph input read as a layer's second operand is a weight left out of the file
 * (`export_params=False`) rather than an activation (attention to an input) when its shape is a
 * static 2-D matrix and the model stores no weight at all (no float initializer or Constant of rank ≥ 2).
 */
function looksLikeUnexportedWeight(v: Value): boolean {
  const dims = v.shape();
  if (!dims || dims.length !== 2 || !dims.every((d) => typeof d === 'number' && d > 0) || !v.graph) return false;
  const stored = (t: { dims: readonly number[]; dataType: number } | undefined | null) => t && t.dims.length >= 2 && FLOAT_TYPES.includes(t.dataType);
  for (const i of v.graph.initializers.values()) if (stored(i.initializer)) return false;
  // Weights exported as Constant nodes (paddle2onnx) are stored weights too.
  for (const n of v.graph) if (n.opType === 'Constant' && stored(n.output(0).constTensor())) return false;
  return true;
}

/**
 * The op type of the node computing `v` when everything `v` depends on is constant (no graph
 * input, at most 64 nodes back): a weight computed in the graph rather than stored.
 */
function constantSubgraphOp(v: Value): string | undefined {
  const seen = new Set<Value>();
  const work = [v];
  while (work.length) {
    const x = work.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    const t = x.constTensor();
    // Float values, and integer axes or shapes: a weight of another type (int16, float8, packed
    // int32) behind a DequantizeLinear or an unpacking chain is already quantized, not unfolded.
    if (t) {
      if (!FLOAT_TYPES.includes(t.dataType) && t.dims.length > 1) return undefined;
      continue;
    }
    const p = x.producer();
    if (!p || x.isGraphInput() || seen.size > 64 || p.subgraphs().length || NOT_FOLDABLE.has(p.opType)) return undefined;
    if (p.inputs.length === 0 && p.opType !== 'Constant') return undefined;
    for (const i of p.inputs) if (i) work.push(i);
  }
  return v.producer()!.opType;
}

/**
 * The constant `v` is read from through nodes of `ops` only (default domain, at most 8 of
 * them), and those nodes, nearest first.
 */
function constantThrough(v: Value | null | undefined, ops: readonly string[]): { value: Value; chain: Node[] } | undefined {
  const chain: Node[] = [];
  for (let x = v; x; ) {
    if (x.constTensor()) return { value: x, chain };
    const p = x.producer();
    if (!p || p.domain !== '' || !ops.includes(p.opType) || chain.length >= 8) return undefined;
    chain.push(p);
    x = p.input(0);
  }
  return undefined;
}

function findBias(node: Node, op: string, N: number): LayerBias | string | undefined {
  if (op === 'Gemm') {
    const c = node.input(2);
    if (!c) return undefined;
    // Through Identity: torch's exporter reads equal initializers (such as zero biases) as one, behind an Identity per use.
    const found = constantThrough(c, ['Identity']);
    const t = found?.value.constTensor();
    if (!found || !t || t.dataType !== DataType.FLOAT) return 'Gemm bias C is not a float32 constant';
    if (!broadcastsToRow(t.dims, N)) return `Gemm bias C of shape [${t.dims.join('x')}] is not a row of N = ${N}`;
    return { tensor: t, ...found, scale: node.floatAttr('beta', 1) };
  }
  const out = node.output(0);
  if (out.useCount !== 1 || out.isGraphOutput()) return undefined;
  const use = out.uses()[0]!;
  const add = use.node;
  if (add.opType !== 'Add' || add.domain !== '' || add.graph !== node.graph) return undefined;
  const found = constantThrough(add.input(1 - use.inputIndex), ['Identity']);
  const t = found?.value.constTensor();
  if (!found || !t || t.dataType !== DataType.FLOAT) return undefined;
  return broadcastsToRow(t.dims, N) ? { tensor: t, ...found, scale: 1, addNode: add } : undefined;
}

/** True for shapes [N], [1, N], [1, 1, N], …: a bias that adds the same row to every output. */
function broadcastsToRow(dims: readonly number[], N: number): boolean {
  return dims.length >= 1 && dims[dims.length - 1] === N && dims.slice(0, -1).every((d) => d === 1);
}

function rejectSharedWeights(layers: LinearLayer[], skipped: SkippedLayer[]): { layers: LinearLayer[]; skipped: SkippedLayer[] } {
  const byWeight = new Map<Value, LinearLayer[]>();
  for (const l of layers) byWeight.set(l.weightValue, [...(byWeight.get(l.weightValue) ?? []), l]);
  const kept: LinearLayer[] = [];
  for (const l of layers) {
    const group = byWeight.get(l.weightValue)!;
    const foreign = foreignUser(l.weightValue, group);
    if (foreign) skipped.push(skip(l, `weight ${l.weightValue.name} is also used by ${foreign}`));
    else if (group.some((o) => o.transposed !== l.transposed || o.alpha !== l.alpha)) skipped.push(skip(l, `weight ${l.weightValue.name} is shared by layers that read it differently`));
    // A weight is quantized once: a tied embedding and head, one of them outside the blocks, both take 8 bits.
    else kept.push(!l.wBits && group.some((o) => o.wBits) ? { ...l, wBits: 8 } : l);
  }
  return { layers: kept, skipped };
}

/** A user of the weight (or of its chain) that is not one of the group's layers, if any. */
function foreignUser(root: Value, group: LinearLayer[]): string | undefined {
  const ok = new Set<Node>();
  for (const l of group) {
    ok.add(l.node);
    for (const c of l.chain) ok.add(c);
  }
  const stack = [root];
  while (stack.length) {
    const v = stack.pop()!;
    if (v.isGraphOutput()) return 'a graph output';
    for (const u of v.uses()) {
      if (!ok.has(u.node)) return u.node.label();
      if (u.node.opType !== 'MatMul' && u.node.opType !== 'Gemm') stack.push(...u.node.outputs);
    }
  }
  return undefined;
}
