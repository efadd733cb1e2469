/**
 * The JSON schema of `convert inspect --format json` (`schema: "qarvd.inspect/1"`): one
 * {@link InspectReport}, two-space indented, layers in graph order, no timestamps; `model`
 * is the path as given. Norms are float64 values as JSON numbers.
 */

/** The options the S2 rule ran with. */
export interface InspectOptionsUsed {
  tau: number;
  gamma: number;
  align: number;
  minK: number;
  include: string[];
  exclude: string[];
  /**
   * `blocks` when only the repeated blocks' layers were inspected; `outer-w8` when every layer
   * was, those around the blocks marked `wBits: 8` (absent: every layer, `scope all`).
   */
  scope?: 'blocks' | 'outer-w8';
}

/** One eligible linear layer. */
export interface InspectLayer {
  name: string;
  op: string;
  /** Layer type from the node name (`self_attn.q`, `ffn.2`), see `layer-type.ts`. */
  type: string;
  /** Block index from the node name, null outside the repeated blocks. */
  depth: number | null;
  K: number;
  N: number;
  /** Stored weight element type (`f32`, or `f16`/`bf16` behind a Cast). */
  dtype: string;
  /** 8 under `scope outer-w8` for a layer around the repeated blocks (q-arvd's default gives it 8-bit weights); absent otherwise. */
  wBits?: 8;
  /** Median, maximum and max ÷ median of the input-channel norms (ratio null when the median is 0). */
  median: number;
  max: number;
  ratio: number | null;
  /** Median absolute deviation of the norms. */
  mad: number;
  /** `max(median + tau·MAD/0.6745, gamma·median)`. */
  threshold: number;
  /** Channels over the threshold (z-score > tau and norm > gamma·median). */
  rawCount: number;
  /** Outlier channels after rounding up to `align` and capping at K/2: the rows the pass would split off. */
  outliers: number;
  /** The K channel norms in channel order (only when asked for, e.g. for the HTML report). */
  norms?: number[];
}

/** A MatMul/Gemm the pass would leave alone, with its reason. */
export interface InspectSkipped {
  name: string;
  op: string;
  reason: string;
  K?: number;
  N?: number;
}

/** Layers with outliers per type × depth. */
export interface Rollup {
  /** Column order: depths ascending, `null` (outside blocks) last when present. */
  depths: (number | null)[];
  rows: {
    type: string;
    /** One cell per entry of `depths`: layers there and how many of them are flagged. */
    cells: { depth: number | null; layers: number; flagged: number }[];
    layers: number;
    flagged: number;
    /** flagged ÷ layers. */
    share: number;
  }[];
}

/** The whole `convert inspect --format json` document. */
export interface InspectReport {
  schema: 'qarvd.inspect/1';
  model: string;
  options: InspectOptionsUsed;
  layers: InspectLayer[];
  skipped: InspectSkipped[];
  rollup: Rollup;
  /**
   * `quantized`: matrix products already quantized (integer matmul ops, or MatMul/Gemm on a
   * dequantized weight); `floatConvs`: Conv/ConvTranspose nodes with a constant weight, which the
   * passes leave float; each absent when none.
   */
  totals: { layers: number; withOutliers: number; outlierRows: number; rawOutlierRows: number; skipped: number; quantized?: number; floatConvs?: number };
}
