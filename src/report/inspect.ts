/**
 * `convert inspect`: the S2 outlier statistics of every linear layer, computed exactly as the
 * q-arvd pass would under the same options, without changing the model.
 *
 * Rules:
 * 1. Layers are those `findLinearLayers` finds (the pass's eligibility rules, including
 *    min-k and include/exclude); the rest of the MatMul/Gemm nodes are listed as skipped
 *    with the pass's reason.
 * 2. Per layer: the input-channel norms `‖W[k,:]‖₂` of the `[K, N]` weight, their median,
 *    maximum and max ÷ median, and `detectOutliers` under tau/gamma/align: the threshold,
 *    the raw count (channels over the threshold) and the count after alignment.
 * 3. Layer type and depth come from the node name (`layer-type.ts`); the roll-up counts, per
 *    type and depth, the layers with at least one outlier (the paper's Figure 4).
 * 4. Weight bytes are read one layer at a time; nothing is written back.
 */
import { dtypeName } from '../graph/ir/dtype.ts';
import type { Model } from '../graph/ir/model.ts';
import { detectOutliers } from '../kernels/outliers.ts';
import { channelNorms, median } from '../kernels/statistics.ts';
import type { ReadBuffer } from '../graph/ir/tensor.ts';
import { weightMatrixReadInto } from '../passes/quant/layer-weights.ts';
import { ALREADY_QUANTIZED, constantWeightConvs, DEFAULT_MIN_K, findLinearLayers, INTEGER_MATMUL_OPS, type LayerScope } from '../passes/quant/linear-layers.ts';
import { layerKind } from './layer-type.ts';
import type { InspectLayer, InspectOptionsUsed, InspectReport, Rollup } from './inspect-schema.ts';
import { DEFAULT_QUANT_CONFIG } from '../passes/quant/config.ts';

export type * from './inspect-schema.ts';

/** Options of {@link inspectModel}; the defaults are the q-arvd pass's. */
export interface InspectOptions {
  tau?: number;
  gamma?: number;
  align?: number;
  minK?: number;
  include?: string[];
  exclude?: string[];
  /** `blocks`: only the layers the passes' `scope blocks` would consider; `outer-w8`: every layer, those `scope outer-w8` gives 8-bit weights marked. Default `all`. */
  scope?: LayerScope;
  /** Keep every layer's channel norms in the report (for the HTML charts). Default false. */
  norms?: boolean;
}

/** Runs the S2 detection on every eligible layer of the main graph (see the module doc). */
export function inspectModel(model: Model, label: string, options: InspectOptions = {}): InspectReport {
  const used: InspectOptionsUsed = {
    tau: options.tau ?? DEFAULT_QUANT_CONFIG.tau,
    gamma: options.gamma ?? DEFAULT_QUANT_CONFIG.gamma,
    align: options.align ?? DEFAULT_QUANT_CONFIG.align,
    minK: options.minK ?? DEFAULT_MIN_K,
    include: options.include ?? [],
    exclude: options.exclude ?? [],
    ...(options.scope === 'blocks' || options.scope === 'outer-w8' ? { scope: options.scope } : {}),
  };
  const { layers, skipped } = findLinearLayers(model.graph, { minK: used.minK, include: used.include, exclude: used.exclude, scope: options.scope });
  // Read once: one layer at a time, weights in a data file into one reused buffer (a new one per
  // layer cost more in first-touch page faults than the read itself), never a copy.
  const scratch: ReadBuffer = { bytes: new Uint8Array(0) };
  const out: InspectLayer[] = layers.map((l) => {
    const norms = channelNorms(weightMatrixReadInto(l, scratch), l.K, l.N);
    const o = detectOutliers(norms, { tau: used.tau, gamma: used.gamma, align: used.align });
    let max = -Infinity;
    for (const n of norms) if (n > max) max = n;
    const m = median(norms);
    const { type, depth } = layerKind(l.name);
    const entry: InspectLayer = {
      name: l.name,
      op: l.op,
      type,
      depth,
      K: l.K,
      N: l.N,
      dtype: dtypeName(l.storedType),
      ...(l.wBits ? { wBits: l.wBits } : {}),
      median: m,
      max,
      ratio: m > 0 ? max / m : null,
      mad: o.mad,
      threshold: o.threshold,
      rawCount: o.rawCount,
      outliers: o.indices.length,
    };
    if (options.norms) entry.norms = Array.from(norms);
    return entry;
  });
  // A quantized model (this project's output, or another tool's): its integer layers are not listed, only counted.
  let quantized = skipped.filter((s) => s.reason === ALREADY_QUANTIZED).length;
  for (const n of model.graph.nodes()) if (INTEGER_MATMUL_OPS.has(n.opType)) quantized++;
  // The passes say how many Convs stay float; so does inspect (a user trial: it did not).
  const floatConvs = constantWeightConvs(model.graph).length;
  const skippedOut = skipped.map((s) => ({ name: s.name, op: s.op, reason: s.reason, ...(s.K !== undefined ? { K: s.K, N: s.N } : {}) }));
  return {
    schema: 'qarvd.inspect/1',
    model: label,
    options: used,
    layers: out,
    skipped: skippedOut,
    rollup: rollup(out.map((l) => ({ type: l.type, depth: l.depth, flagged: l.outliers > 0 }))),
    totals: {
      layers: out.length,
      withOutliers: out.filter((l) => l.outliers > 0).length,
      outlierRows: out.reduce((s, l) => s + l.outliers, 0),
      rawOutlierRows: out.reduce((s, l) => s + l.rawCount, 0),
      skipped: skippedOut.length,
      ...(quantized ? { quantized } : {}),
      ...(floatConvs ? { floatConvs } : {}),
    },
  };
}

/**
 * Counts flagged layers per type × depth. Types that occur inside blocks come first, in order
 * of first appearance, then the others; depths ascend, with `null` (outside any block) last.
 */
export function rollup(items: readonly { type: string; depth: number | null; flagged: boolean }[]): Rollup {
  const depthSet = new Set(items.map((i) => i.depth));
  const depths = [...depthSet].filter((d): d is number => d !== null).sort((a, b) => a - b);
  const allDepths: (number | null)[] = depthSet.has(null) ? [...depths, null] : depths;
  const types = [...new Set(items.map((i) => i.type))];
  const inBlocks = (t: string) => items.some((i) => i.type === t && i.depth !== null);
  const ordered = [...types.filter(inBlocks), ...types.filter((t) => !inBlocks(t))];
  const rows = ordered.map((type) => {
    const mine = items.filter((i) => i.type === type);
    const cells = allDepths.map((depth) => {
      const here = mine.filter((i) => i.depth === depth);
      return { depth, layers: here.length, flagged: here.filter((i) => i.flagged).length };
    });
    const flagged = mine.filter((i) => i.flagged).length;
    return { type, cells, layers: mine.length, flagged, share: mine.length ? flagged / mine.length : 0 };
  });
  return { depths: allDepths, rows };
}
