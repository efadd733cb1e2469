/**
 * Second-moment statistics of layer inputs for reconstruction (METHOD.md "Reconstruction"):
 * per observed tensor and per chunk, the Gram matrix `Σ xᵀx` (K×K), the row sum `Σ x` and
 * the row count. S1's α combines the chunks afterwards: `H = Σ_c α_c G_c`,
 * `μ = Σ_c α_c s_c / Σ_c α_c n_c`.
 *
 * Arithmetic: each call's `XᵀX` is one float32 GEMM in onnxruntime (`Gemm` with transA; its
 * MLAS kernels do in milliseconds what a JavaScript loop does in seconds: the products are
 * rows·K² per call), and the calls are summed in float64 in call order (the collect step does
 * both in a worker thread, gram-worker.ts, with the same bits as {@link GramStats.addProduct}). A float32 sum over one call's
 * rows (at most a few thousand) is within about √rows·2⁻²⁴ relative; the float64 sum across
 * calls keeps that from growing with the number of samples, as a float32 running sum would.
 * Row sums are float64 throughout.
 *
 * Two folds: the sums are kept apart for even and odd samples, so that reconstruction can
 * check a choice made on one half of the calibration samples against the other half (the
 * `damp auto` cross-validation); the whole set is their sum.
 *
 * Memory: 16·K² bytes per tensor and chunk (two folds), independent of the number of samples.
 *
 * α-weighted sums (a {@link GramStats} made with `weighted`, the grouped collections that run
 * once S1's α is known, grouped.ts): each product enters one sum per fold already scaled by its
 * chunk's weight, 16·K² bytes whatever the chunk count. That adds the same float64 terms in
 * another order (call order across chunks, instead of per chunk then across chunks), so `H`
 * differs from the per-chunk path's in its last bits (relative ~ calls·2⁻⁵³). The row sums stay
 * per chunk (K values each), so `μ` and the weights are bit for bit the per-chunk path's.
 */
import type * as ort from 'onnxruntime-node';
import { importOnnxruntime } from '../../runtime/optional-import.ts';
import { attr } from '../../graph/ir/attribute.ts';
import { DataType } from '../../graph/ir/dtype.ts';
import { Graph } from '../../graph/ir/graph.ts';
import { Model } from '../../graph/ir/model.ts';
import { Node } from '../../graph/ir/node.ts';
import { Value } from '../../graph/ir/value.ts';
import { encodeModel } from '../../graph/proto/codec.ts';
import { inlineSink } from '../../graph/serde/external-sink.ts';
import { modelToProto } from '../../graph/serde/to-proto.ts';
import { sessionOptions } from './session.ts';

/** One chunk's sums. */
export interface ChunkGram {
  /** `Σ xᵀx` over the rows of the calls that enter it, row-major K×K. */
  gram: Float64Array;
  /** Rows in `gram`. */
  gramRows: number;
  /** `Σ x` over every row. */
  sum: Float64Array;
  rows: number;
}

/** The α-combined statistics reconstruction works with. */
export interface ReconStats {
  K: number;
  /** `H = Σ_c α_c Σ_{x ∈ c} xᵀx`. */
  h: Float64Array;
  /** `μ = Σ_c α_c Σ_{x ∈ c} x / Σ_c α_c n_c`: the weighted mean row. */
  mean: Float64Array;
  /** `Σ_c α_c n_c` over the rows in H: the weight H is a sum over (H / weight is the weighted second moment). */
  weight: number;
  /**
   * The same statistics of the even and of the odd calibration samples (their sum is this),
   * for choices checked on held-out samples; absent with fewer than two samples with rows.
   */
  folds?: [ReconStats, ReconStats];
  /** The name of the layer input these are of (the `.recon` writer stores an input once even when two groups collected it). */
  input?: string;
}

/** Statistics by layer name, as reconstruction looks them up (a map, a side file read as needed, or one group at a time). */
export interface ReconLookup {
  get(name: string): ReconStats | undefined;
}

/** Calibration samples fall into two folds by the parity of their index. */
export const foldOf = (sample: number): 0 | 1 => (sample % 2) as 0 | 1;

/** Per-chunk Gram statistics of one observed tensor (`[..., K]`). */
export class GramStats {
  /** Per chunk: the sums of fold 0 and fold 1 (weighted: their row sums and counts only, `gram` empty). */
  private readonly byChunk = new Map<number, [ChunkGram, ChunkGram]>();
  /** Weighted: per fold `Σ_c w_c Σ xᵀx` ({@link setWeighted}). */
  private readonly weightedSums: [Float64Array | undefined, Float64Array | undefined] = [undefined, undefined];

  /**
   * @param weighted the products come α-weighted, one sum per fold ({@link setWeighted}; see the
   *   module doc): no per-chunk K×K sums are kept.
   */
  constructor(
    readonly channels: number,
    readonly weighted = false,
  ) {}

  /** Adds one call's rows to the chunk's row sum (every call), in the sample's fold. */
  addRows(chunk: number, data: Float32Array, fold: 0 | 1 = 0): void {
    const K = this.channels;
    const c = this.chunkSums(chunk)[fold];
    const rows = data.length / K;
    for (let r = 0; r < rows; r++) {
      const at = r * K;
      for (let k = 0; k < K; k++) c.sum[k] += data[at + k]!;
    }
    c.rows += rows;
  }

  /** Adds one call's `XᵀX` (K×K float32, `rows` rows) to the chunk's Gram matrix, in the sample's fold. */
  addProduct(chunk: number, product: Float32Array, rows: number, fold: 0 | 1 = 0): void {
    const c = this.chunkSums(chunk)[fold];
    const { gram } = c;
    for (let i = 0; i < gram.length; i++) gram[i] += product[i]!;
    c.gramRows += rows;
  }

  /**
   * Takes a chunk's `Σ XᵀX` summed elsewhere from zero in call order (gram-worker.ts), in
   * place of {@link addProduct} calls: the chunk's fold must have no products yet.
   */
  setProducts(chunk: number, fold: 0 | 1, gram: Float64Array, gramRows: number): void {
    const c = this.chunkSums(chunk)[fold];
    if (gram.length !== c.gram.length || c.gramRows !== 0) throw new RangeError(`GramStats.setProducts: chunk ${chunk} fold ${fold} already has products, or ${gram.length} values are not ${this.channels}²`);
    c.gram = gram;
    c.gramRows = gramRows;
  }

  /**
   * Weighted: takes a fold's `Σ w_c XᵀX` summed elsewhere (gram-worker.ts) over the products
   * counted with {@link countProduct}; `w_c` must be {@link productWeight} of the chunk.
   */
  setWeighted(fold: 0 | 1, gram: Float64Array): void {
    if (!this.weighted || gram.length !== this.channels ** 2 || this.weightedSums[fold]) throw new RangeError(`GramStats.setWeighted: fold ${fold} already set, not weighted statistics, or ${gram.length} values are not ${this.channels}²`);
    this.weightedSums[fold] = gram;
  }

  /** Weighted: counts the rows of one product added (α-weighted) to the fold's sum, in its chunk. */
  countProduct(chunk: number, rows: number, fold: 0 | 1): void {
    this.chunkSums(chunk)[fold].gramRows += rows;
  }

  private chunkSums(chunk: number): [ChunkGram, ChunkGram] {
    let c = this.byChunk.get(chunk);
    if (!c) {
      const K = this.channels;
      const empty = (): ChunkGram => ({ gram: new Float64Array(this.weighted ? 0 : K * K), gramRows: 0, sum: new Float64Array(K), rows: 0 });
      c = [empty(), empty()];
      this.byChunk.set(chunk, c);
    }
    return c;
  }

  /** Per chunk, ascending: both folds' sums (what a saved collection keeps, stats-file.ts). */
  snapshot(): { chunk: number; folds: [ChunkGram, ChunkGram] }[] {
    if (this.weighted) throw new Error('internal: α-weighted Gram statistics have no per-chunk matrices to save');
    return [...this.byChunk.keys()].sort((a, b) => a - b).map((chunk) => ({ chunk, folds: this.byChunk.get(chunk)! }));
  }

  /** Statistics rebuilt from a {@link snapshot}. */
  static restore(channels: number, chunks: { chunk: number; folds: [ChunkGram, ChunkGram] }[]): GramStats {
    const g = new GramStats(channels);
    for (const { chunk, folds } of chunks) {
      for (const f of folds) if (f.gram.length !== channels * channels || f.sum.length !== channels) throw new RangeError(`GramStats.restore: chunk ${chunk} has a ${f.gram.length}-value Gram matrix and a ${f.sum.length}-value sum for ${channels} channels`);
      g.byChunk.set(chunk, folds);
    }
    return g;
  }

  /** The sums of one fold of a chunk. */
  chunk(c: number, fold: 0 | 1 = 0): ChunkGram | undefined {
    return this.byChunk.get(c)?.[fold];
  }

  /**
   * `H`, `μ` and the total weight with chunk `chunks[j]` weighted by `alpha[j]`, with the
   * two folds' own statistics beside them when both saw rows.
   */
  combine(chunks: readonly number[], alpha: readonly number[]): ReconStats {
    const folds = [this.combineFold(chunks, alpha, 0), this.combineFold(chunks, alpha, 1)] as const;
    const [a, b] = folds;
    const K = this.channels;
    const h = new Float64Array(K * K);
    for (let i = 0; i < h.length; i++) h[i] = a.h[i]! + b.h[i]!;
    const meanWeight = a.meanWeight + b.meanWeight;
    const mean = new Float64Array(K);
    for (let k = 0; k < K; k++) mean[k] = meanWeight > 0 ? (a.mean[k]! * a.meanWeight + b.mean[k]! * b.meanWeight) / meanWeight : 0;
    const whole: ReconStats = { K, h, mean, weight: a.weight + b.weight };
    if (a.weight > 0 && b.weight > 0) whole.folds = [strip(a), strip(b)];
    return whole;
  }

  private combineFold(chunks: readonly number[], alpha: readonly number[], fold: 0 | 1): ReconStats & { meanWeight: number } {
    const K = this.channels;
    // Weighted: the products came scaled (productWeight), summed in the fold's one matrix.
    const h = this.weighted ? (this.weightedSums[fold] ?? new Float64Array(K * K)) : new Float64Array(K * K);
    const total = new Float64Array(K);
    let weight = 0;
    let meanWeight = 0;
    chunks.forEach((chunk, j) => {
      const c = this.byChunk.get(chunk)?.[fold];
      if (!c) return;
      const a = alpha[j]!;
      if (!this.weighted) {
        const scale = productWeight(a, c);
        for (let i = 0; i < h.length; i++) h[i] += scale * c.gram[i]!;
      }
      for (let k = 0; k < K; k++) total[k] += a * c.sum[k]!;
      if (c.gramRows > 0) weight += a * c.rows;
      meanWeight += a * c.rows;
    });
    const mean = total.map((v) => (meanWeight > 0 ? v / meanWeight : 0));
    return { K, h, mean, weight, meanWeight };
  }
}

/**
 * The factor a chunk's products enter `H` with: its α, and, when its Gram covers a sample of
 * its calls (gram-stride), its rows over the rows in its Gram, so that the chunks keep their
 * α-weighted shares of H.
 */
export function productWeight(alpha: number, counts: { rows: number; gramRows: number }): number {
  return counts.gramRows > 0 ? (alpha * counts.rows) / counts.gramRows : 0;
}

/** A fold's statistics without its bookkeeping field. */
function strip({ K, h, mean, weight }: ReconStats): ReconStats {
  return { K, h, mean, weight };
}

/**
 * onnxruntime sessions computing `XᵀX` of a `[rows, K]` float32 matrix, one per K (opened on
 * first use). `threads` as calibration's (0: onnxruntime's default).
 */
export class GramSessions {
  private readonly sessions = new Map<number, Promise<ort.InferenceSession>>();

  constructor(private readonly threads: number) {}

  /** `XᵀX` of the rows in `data` (`data.length / K` rows of K). */
  async product(data: Float32Array, K: number): Promise<Float32Array> {
    const runtime = await importOnnxruntime();
    let s = this.sessions.get(K);
    if (!s) {
      s = runtime.InferenceSession.create(gramModelBytes(K), sessionOptions(this.threads));
      this.sessions.set(K, s);
    }
    const session = await s;
    const out = await session.run({ x: new runtime.Tensor('float32', data, [data.length / K, K]) });
    return out.g!.data as Float32Array;
  }

  async dispose(): Promise<void> {
    for (const s of this.sessions.values()) await (await s).release();
    this.sessions.clear();
  }
}

/** The model `g = Gemm(x, x, transA=1)` for x `[rows, K]` (opset 13). */
export function gramModelBytes(K: number): Uint8Array {
  const g = new Graph({ name: 'gram' });
  const model = new Model(g, { irVersion: 8, opset: 13 });
  const type = (dims: (number | string)[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } });
  const x = new Value('x', { type: type(['rows', K]) });
  g.addInput(x);
  const gemm = new Node({ opType: 'Gemm', inputs: [x, x], outputs: ['g'], attributes: [attr.int('transA', 1)] });
  g.append(gemm);
  const out = gemm.outputs[0]!;
  out.type = type([K, K]);
  g.addOutput(out);
  return encodeModel(modelToProto(model, inlineSink));
}
