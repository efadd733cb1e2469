// The Wan2.1-1.3B-shaped block the speed benchmark quantizes (and, shrunk, the census test),
// built in code (no downloads, synthetic weights): the shapes of one DiT block's linear layers — q and o 1536×1536, ffn.0 1536×8960, Gelu, ffn.2
// 8960×1536 — each with a bias, on a [rows, 1536] input whose row count is symbolic. Weights
// are seeded normal (σ 0.02); the `outliers` variant multiplies ~2% of the input rows of o and
// ffn.2 by 12, the channels q-arvd's S2 splits off.
import { attr } from '../../src/graph/ir/attribute.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { seededRandom } from '../../src/kernels/random.ts';

/** The block's sizes; `small` shrinks it for tests with the same structure. */
export interface BlockShape {
  dim: number;
  ffn: number;
}

export const WAN_SHAPE: BlockShape = { dim: 1536, ffn: 8960 };

const rowsType = (n: number) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'rows' }, { dim_value: n }] } } });

/** Seeded `[K, N]` weight, σ 0.02, with every `stride`-th input row (offset 3) × `factor` when `stride` is set. */
function weight(seed: number, K: number, N: number, stride?: number, factor = 12): Float32Array {
  const w = seededRandom(seed).normalArray(K * N).map((v) => v * 0.02);
  if (stride) for (let k = 3; k < K; k += stride) for (let n = 0; n < N; n++) w[k * N + n]! *= factor;
  return w;
}

/** The block: x → q → o → ffn.0 → Gelu → ffn.2 → y, opset 20 (Gelu), rows symbolic. */
export function wanBlock(options: { outliers: boolean; shape?: BlockShape }): Model {
  const { dim, ffn } = options.shape ?? WAN_SHAPE;
  const g = new Graph({ name: options.outliers ? 'wan_block_outliers' : 'wan_block' });
  const model = new Model(g, { opset: 20 });
  model.producerName = 'qarvd-bench';
  const x = new Value('x', { type: rowsType(dim) });
  g.addInput(x);
  // ~2% of input rows: one in 50.
  const stride = options.outliers ? 50 : undefined;
  let seed = 11;
  const init = (name: string, dims: number[], data: Float32Array) => {
    const v = new Value(name, { initializer: Tensor.fromFloat32(name, dims, data) });
    g.addInitializer(v);
    return v;
  };
  const linear = (name: string, input: Value, K: number, N: number, outlierRows: boolean) => {
    const w = init(`${name}.weight`, [K, N], weight(seed++, K, N, outlierRows ? stride : undefined));
    const b = init(`${name}.bias`, [N], seededRandom(seed++).normalArray(N).map((v) => v * 0.01));
    const mm = new Node({ opType: 'MatMul', name: `${name}/MatMul`, inputs: [input, w], outputs: [`${name}/MatMul_out`] });
    const add = new Node({ opType: 'Add', name: `${name}/Add`, inputs: [mm.output(0), b], outputs: [`${name}/Add_out`] });
    g.append(mm, add);
    return add.output(0);
  };
  const q = linear('q', x, dim, dim, false);
  const o = linear('o', q, dim, dim, true);
  const f0 = linear('ffn.0', o, dim, ffn, false);
  const gelu = new Node({ opType: 'Gelu', name: 'ffn/Gelu', inputs: [f0], outputs: ['ffn/Gelu_out'], attributes: [attr.string('approximate', 'tanh')] });
  g.append(gelu);
  const y = linear('ffn.2', gelu.output(0), ffn, dim, true);
  y.type = rowsType(dim);
  g.addOutput(y);
  return model;
}
