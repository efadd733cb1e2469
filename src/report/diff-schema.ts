/**
 * The JSON schema of `convert diff --format json` (`schema: "qarvd.diff/1"`).
 *
 * - The document is one {@link ModelDiff} object, written with two-space indentation and a
 *   final newline; key order is fixed, arrays are in graph order. No timestamps, no absolute
 *   paths: `before` and `after` are the paths as given on the command line.
 * - `differ` is what `--exit-code` tests: any model-field, opset, op-count, input, output,
 *   initializer, layer or node difference.
 * - Op keys are `OpType` for the default ONNX domain and `domain.OpType` otherwise
 *   (`com.microsoft.MatMulIntegerToFloat`); counts include the nodes of subgraphs.
 * - Sizes are bytes of raw tensor data (`Tensor.byteLength`): 4-bit types count half a byte
 *   per element. `weights` sums the initializers (subgraphs included) and the tensors of
 *   `Constant` nodes (exporters store weights either way; shape constants count too): the
 *   same figure the quantization passes log as `weights X → Y bytes` (src/graph/weight-bytes.ts).
 * - `sha256` fields appear only when `dataCompared` is true (`--data`); without it no
 *   tensor data is read and an initializer whose contents changed but whose type and shape
 *   did not is counted as unchanged.
 * - A change to the schema that removes or renames a field bumps the version in `schema`;
 *   new optional fields do not.
 */

/** The version tag of this schema. */
export type DiffSchema = 'qarvd.diff/1';

/** A graph input or output. */
export interface ValueSig {
  name: string;
  /** Short element type (`f32`, `i64`, `u8`, `i4`), `?` when the model does not say. */
  dtype: string;
  /** Dims: numbers, symbolic names, null for an unknown dim; null when the rank is unknown. */
  shape: (number | string | null)[] | null;
}

/** An initializer. */
export interface TensorSig {
  name: string;
  dtype: string;
  shape: number[];
  /** Raw data size in bytes. */
  bytes: number;
  /** True when the data lives in an external data file. */
  external?: boolean;
  /** Hex SHA-256 of the raw little-endian bytes (only with `--data`). */
  sha256?: string;
  /**
   * Hex SHA-256 of the values of an 8- or 4-bit integer tensor as 16-bit integers (only with
   * `--data`): equal for the same numbers stored as int8 or int4, so a change of storage type
   * is told apart from a change of values.
   */
  valuesSha256?: string;
}

/** Items matched by name: what only one side has, and what both have but differently. */
export interface ListDiff<T> {
  added: T[];
  removed: T[];
  /** `what` lists the differing fields: `dtype`, `shape`, `data`. */
  changed: { name: string; before: T; after: T; what: string[] }[];
  unchanged: number;
}

/** One op type's node count in each model. */
export interface OpCount {
  op: string;
  before: number;
  after: number;
  delta: number;
}

/** The decision a quantization pass wrote on a layer's final node (`qarvd.decision`). */
export interface LayerDecision {
  method: string;
  layer: string;
  op: string;
  K: number;
  N: number;
  mode: 'dual' | 'single';
  /** Input channels in the outlier branch (0 for single-scale). */
  outliers: number;
  /** `W8A8`, `W4A8`, `W4`, … */
  bits: string;
  format: string;
  /** `float` when the small-layer rule kept the layer fp32 (quantized weights dequantized at load); absent: integer kernels. */
  compute?: 'float';
}

/** A linear layer whose nodes differ between the models. */
export interface LayerChange {
  /** The original node name (the value of `qarvd.layer`). */
  name: string;
  op: string;
  K: number | null;
  N: number | null;
  /** `quantized`: float before, pass output after; `restored`: the reverse; `requantized`: both are pass outputs. */
  direction: 'quantized' | 'restored' | 'requantized';
  /** The decision found on the after side (absent when the after side is float). */
  decision?: LayerDecision;
  /** The decision found on the before side, when it had one. */
  decisionBefore?: LayerDecision;
  /** Op counts of the layer's nodes on each side. */
  opsBefore: Record<string, number>;
  opsAfter: Record<string, number>;
  /** Non-zero count changes, in order of first appearance in the after side, then vanished ops. */
  delta: { op: string; delta: number }[];
  /** Bytes of the constants the layer's nodes read on each side. */
  weightBytes: { before: number; after: number };
}

/** A node outside the rewritten layers, by name (`(unnamed Op → output)` for unnamed nodes). */
export interface NodeRef {
  name: string;
  op: string;
}

/** A node present in both models whose op, attributes, inputs or outputs differ. */
export interface NodeChange extends NodeRef {
  /** Human-readable differences, e.g. `inputs (x, w) → (x2, w)`. */
  what: string[];
}

/** The whole `convert diff --format json` document. */
export interface ModelDiff {
  schema: DiffSchema;
  before: string;
  after: string;
  differ: boolean;
  dataCompared: boolean;
  /** Changed model fields only (`ir_version`, `producer_name`, `producer_version`, `model_version`, `domain`, `graph_name`). */
  model: { field: string; before: string; after: string }[];
  /** Every imported domain (`ai.onnx` for the default); null where a model does not import it. */
  opsets: { domain: string; before: number | null; after: number | null }[];
  ops: OpCount[];
  nodes: { before: number; after: number };
  inputs: ListDiff<ValueSig>;
  outputs: ListDiff<ValueSig>;
  initializers: ListDiff<TensorSig>;
  /** Initializer + Constant tensor bytes of each model; `ratio` = after / before (1 when before is 0). */
  weights: { before: number; after: number; ratio: number };
  /** Linear layers: rewritten ones listed, unchanged ones counted. */
  layers: { unchanged: number; rewritten: LayerChange[] };
  /** Nodes that belong to no rewritten layer. */
  otherNodes: { added: NodeRef[]; removed: NodeRef[]; changed: NodeChange[] };
}
