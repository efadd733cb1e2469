// Small synthetic graphs (built here, not real models) for the golden and dual-scale tests:
// one per kind of linear layer the passes recognise, with seeded weights.
import * as ort from 'onnxruntime-node';
import { attr, type Attribute } from '../../src/graph/ir/attribute.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { type TypeProtoData, Value } from '../../src/graph/ir/value.ts';
import { float32ToFloat16Array } from '../../src/kernels/float16.ts';
import { seededRandom, type SeededRandom } from '../../src/kernels/random.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';

function f32Type(dims: number[]): TypeProtoData {
  return { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } };
}

/** Builds a small float32 graph; inputs and outputs are declared with fixed shapes. */
export class GraphBuilder {
  readonly model: Model;
  readonly inputs: { name: string; dims: number[] }[] = [];

  constructor(name: string, opset = 17) {
    this.model = new Model(new Graph({ name }), { opset });
    this.model.producerName = 'qarvd-test';
  }

  get graph(): Graph {
    return this.model.graph;
  }

  input(name: string, dims: number[]): Value {
    const v = new Value(name, { type: f32Type(dims) });
    this.graph.addInput(v);
    this.inputs.push({ name, dims });
    return v;
  }

  init(name: string, dims: number[], data: Float32Array): Value {
    const v = new Value(name, { initializer: Tensor.fromFloat32(name, dims, data) });
    this.graph.addInitializer(v);
    return v;
  }

  initF16(name: string, dims: number[], data: Float32Array): Value {
    const h = float32ToFloat16Array(data);
    const v = new Value(name, { initializer: Tensor.fromBytes(name, DataType.FLOAT16, dims, new Uint8Array(h.buffer, h.byteOffset, h.byteLength)) });
    this.graph.addInitializer(v);
    return v;
  }

  node(opType: string, name: string, inputs: Value[], attributes: Attribute[] = []): Value {
    const n = new Node({ opType, name, inputs, outputs: [`${name}_out`], attributes });
    this.graph.append(n);
    return n.output(0);
  }

  output(v: Value, dims: number[]): void {
    v.type = f32Type(dims);
    this.graph.addOutput(v);
  }

  /** Seeded standard-normal feeds for every input. */
  feeds(random: SeededRandom): Record<string, ort.Tensor> {
    return Object.fromEntries(this.inputs.map(({ name, dims }) => [name, new ort.Tensor('float32', random.normalArray(dims.reduce((a, b) => a * b, 1)), dims)]));
  }

  /** Test-only calibration: four samples of seeded normal inputs. */
  calibration(): CalibrationModule {
    return {
      samples: 4,
      feeds: (ctx) => [{ feeds: this.feeds(ctx.random) }],
    };
  }
}

/**
 * A seeded `[K, N]` weight (normal, σ = 0.1) whose rows `outlierRows` are multiplied by
 * `factor`: planted outlier input channels.
 */
export function weightWithOutliers(seed: number, K: number, N: number, outlierRows: readonly number[] = [], factor = 10): Float32Array {
  const r = seededRandom(seed);
  const w = r.normalArray(K * N).map((v) => v * 0.1);
  for (const k of outlierRows) for (let n = 0; n < N; n++) w[k * N + n]! *= factor;
  return w;
}

/** `[K, N]` → `[N, K]`. */
export function transpose(w: Float32Array, K: number, N: number): Float32Array {
  const out = new Float32Array(K * N);
  for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) out[n * K + k] = w[k * N + n]!;
  return out;
}

/** A synthetic golden case: a graph builder and what the test expects of it. */
export interface SyntheticCase {
  name: string;
  description: string;
  build(): GraphBuilder;
}

const K = 64;
const N = 32;

/** The golden cases (all synthetic). The first has a planted outlier row, so its layer is dual-scale. */
export const SYNTHETIC_CASES: readonly SyntheticCase[] = [
  {
    name: 'matmul',
    description: 'MatMul(x, W) with W [64, 32] and a planted outlier row (row 7 × 10): dual-scale',
    build() {
      const b = new GraphBuilder('matmul');
      const x = b.input('x', [2, K]);
      b.output(b.node('MatMul', 'fc/MatMul', [x, b.init('fc.weight', [K, N], weightWithOutliers(1, K, N, [7]))]), [2, N]);
      return b;
    },
  },
  {
    name: 'matmul-add-bias',
    description: 'MatMul(x, W) + b: the Add is folded into the layer',
    build() {
      const b = new GraphBuilder('matmul_add_bias');
      const x = b.input('x', [2, K]);
      const y = b.node('MatMul', 'fc/MatMul', [x, b.init('fc.weight', [K, N], weightWithOutliers(2, K, N))]);
      b.output(b.node('Add', 'fc/Add', [y, b.init('fc.bias', [N], seededRandom(3).normalArray(N))]), [2, N]);
      return b;
    },
  },
  {
    name: 'gemm-transb-alpha-beta',
    description: 'Gemm(x, W[N, K], C) with transB = 1, alpha = 0.5, beta = 2: alpha folded into W, beta into the bias',
    build() {
      const b = new GraphBuilder('gemm');
      const x = b.input('x', [2, K]);
      const w = b.init('fc.weight', [N, K], transpose(weightWithOutliers(4, K, N), K, N));
      const c = b.init('fc.bias', [N], seededRandom(5).normalArray(N));
      b.output(b.node('Gemm', 'fc/Gemm', [x, w, c], [attr.int('transB', 1), attr.float('alpha', 0.5), attr.float('beta', 2)]), [2, N]);
      return b;
    },
  },
  {
    name: 'matmul-transpose',
    description: 'MatMul(x, Transpose(W[N, K]))',
    build() {
      const b = new GraphBuilder('matmul_transpose');
      const x = b.input('x', [2, K]);
      const wt = b.node('Transpose', 'fc/Transpose', [b.init('fc.weight', [N, K], transpose(weightWithOutliers(6, K, N), K, N))], [attr.ints('perm', [1, 0])]);
      b.output(b.node('MatMul', 'fc/MatMul', [x, wt]), [2, N]);
      return b;
    },
  },
  {
    name: 'fp16-cast',
    description: 'an fp16 weight behind Cast(to = float): the model stays fp32 in and out',
    build() {
      const b = new GraphBuilder('fp16_cast');
      const x = b.input('x', [2, K]);
      const w = b.node('Cast', 'fc/Cast', [b.initF16('fc.weight', [K, N], weightWithOutliers(7, K, N))], [attr.int('to', DataType.FLOAT)]);
      b.output(b.node('MatMul', 'fc/MatMul', [x, w]), [2, N]);
      return b;
    },
  },
  {
    name: 'shared-weight',
    description: 'two MatMuls reading one weight: quantized once',
    build() {
      const b = new GraphBuilder('shared_weight');
      const x1 = b.input('x1', [2, K]);
      const x2 = b.input('x2', [3, K]);
      const w = b.init('shared.weight', [K, N], weightWithOutliers(8, K, N));
      b.output(b.node('MatMul', 'a/MatMul', [x1, w]), [2, N]);
      b.output(b.node('MatMul', 'b/MatMul', [x2, w]), [3, N]);
      return b;
    },
  },
  {
    name: 'attention-skipped',
    description: 'q = x·Wq, then MatMul(q, Transpose(q)) of two activations: the second MatMul is skipped',
    build() {
      const b = new GraphBuilder('attention');
      const x = b.input('x', [1, 8, K]);
      const q = b.node('MatMul', 'attn/q/MatMul', [x, b.init('attn.q.weight', [K, K], weightWithOutliers(9, K, K))]);
      const kt = b.node('Transpose', 'attn/Transpose', [q], [attr.ints('perm', [0, 2, 1])]);
      b.output(b.node('MatMul', 'attn/MatMul', [q, kt]), [1, 8, 8]);
      return b;
    },
  },
];
