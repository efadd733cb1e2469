// A model shaped like Wan2.1-1.3B's transformer linears, generated tensor by tensor so that
// no more than one weight is ever in memory: `blocks` blocks of width 1536, each with self-
// and cross-attention q, k, v, o (1536×1536) and an FFN of 1536×8960 and 8960×1536, every
// linear with a bias (30 blocks: 1.39 G parameters, 5.57 GB of float32). Weights are N(0, 0.02²)
// from the project's seeded generator, with ~2% of each weight's input channels (rows) scaled
// ×8 so that q-arvd finds outliers to split, as in a real checkpoint. The graph between the
// linears is a stand-in (q + k + v instead of attention): the conversion and inspection this
// model benchmarks look only at the linears and their weights.
//
//   node --import tsx bench/wan-model.ts generate <out.onnx> <blocks>
//
// prints one JSON line: the SaveResult, the time and process.resourceUsage().maxRSS in bytes.
import { pathToFileURL } from 'node:url';
import { DataType } from '../src/graph/ir/dtype.ts';
import { Graph } from '../src/graph/ir/graph.ts';
import { Model } from '../src/graph/ir/model.ts';
import { Node } from '../src/graph/ir/node.ts';
import { Tensor } from '../src/graph/ir/tensor.ts';
import { Value } from '../src/graph/ir/value.ts';
import { saveModel } from '../src/graph/serde/io.ts';
import { seededRandom } from '../src/kernels/random.ts';

export const WAN_WIDTH = 1536;
export const WAN_FFN = 8960;

/** The linears of one block: name, K (input channels), N (output channels). */
export const WAN_BLOCK_LINEARS: readonly [string, number, number][] = [
  ...['self_attn', 'cross_attn'].flatMap((a) => ['q', 'k', 'v', 'o'].map((p): [string, number, number] => [`${a}.${p}`, WAN_WIDTH, WAN_WIDTH])),
  ['ffn.0', WAN_WIDTH, WAN_FFN],
  ['ffn.2', WAN_FFN, WAN_WIDTH],
];

/** Parameters (weights and biases) of a model of `blocks` blocks. */
export function wanParameters(blocks: number): number {
  return blocks * WAN_BLOCK_LINEARS.reduce((s, [, K, N]) => s + K * N + N, 0);
}

/** A `[K, N]` weight: N(0, 0.02²) with ~2% of its rows ×8, from a seed of its own. */
function weightBytes(seed: number, K: number, N: number): Uint8Array {
  const rng = seededRandom(seed);
  const w = rng.normalArray(K * N);
  for (let i = 0; i < w.length; i++) w[i]! *= 0.02;
  const outliers = Math.round(K * 0.02);
  for (let j = 0; j < outliers; j++) {
    const k = rng.int(K);
    for (let n = 0; n < N; n++) w[k * N + n]! *= 8;
  }
  return new Uint8Array(w.buffer);
}

function biasBytes(seed: number, N: number): Uint8Array {
  const b = seededRandom(seed).normalArray(N);
  for (let i = 0; i < N; i++) b[i]! *= 0.01;
  return new Uint8Array(b.buffer);
}

/** The model, every weight a {@link Tensor.lazy} produced when it is saved. */
export function buildWanModel(blocks: number, seed = 1): Model {
  const g = new Graph({ name: 'wan-shaped' });
  const model = new Model(g, { irVersion: 9, opset: 20 });
  model.producerName = 'qarvd-bench';
  const f32 = (dims: (number | string)[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } });
  const x0 = new Value('x', { type: f32(['rows', WAN_WIDTH]) });
  g.addInput(x0);
  let tensorSeed = seed * 1_000_003;
  const linear = (name: string, x: Value, K: number, N: number): Value => {
    const ws = tensorSeed++;
    const bs = tensorSeed++;
    const w = new Value(`${name}.weight`, { initializer: Tensor.lazy(`${name}.weight`, DataType.FLOAT, [K, N], () => weightBytes(ws, K, N)) });
    const b = new Value(`${name}.bias`, { initializer: Tensor.lazy(`${name}.bias`, DataType.FLOAT, [N], () => biasBytes(bs, N)) });
    g.addInitializer(w);
    g.addInitializer(b);
    const mm = new Node({ opType: 'MatMul', name: `${name}/MatMul`, inputs: [x, w], outputs: [`${name}/MatMul_output`] });
    const add = new Node({ opType: 'Add', name: `${name}/Add`, inputs: [mm.outputs[0]!, b], outputs: [`${name}/Add_output`] });
    g.append(mm);
    g.append(add);
    return add.outputs[0]!;
  };
  const op = (opType: string, name: string, inputs: Value[]): Value => {
    const n = new Node({ opType, name, inputs, outputs: [`${name}_output`] });
    g.append(n);
    return n.outputs[0]!;
  };
  let x = x0;
  for (let i = 0; i < blocks; i++) {
    const p = `blocks.${i}`;
    for (const a of ['self_attn', 'cross_attn']) {
      const [q, k, v] = ['q', 'k', 'v'].map((t) => linear(`${p}.${a}.${t}`, x, WAN_WIDTH, WAN_WIDTH));
      const mixed = op('Sum', `${p}.${a}/Sum`, [q!, k!, v!]);
      x = op('Add', `${p}.${a}/residual`, [x, linear(`${p}.${a}.o`, mixed, WAN_WIDTH, WAN_WIDTH)]);
    }
    const h = op('Gelu', `${p}.ffn/Gelu`, [linear(`${p}.ffn.0`, x, WAN_WIDTH, WAN_FFN)]);
    x = op('Add', `${p}.ffn/residual`, [x, linear(`${p}.ffn.2`, h, WAN_FFN, WAN_WIDTH)]);
  }
  x.type = f32(['rows', WAN_WIDTH]);
  g.addOutput(x);
  return model;
}

async function main(argv: string[]): Promise<void> {
  const [cmd, out, blocks] = argv;
  if (cmd !== 'generate' || !out || !(Number(blocks) >= 1)) throw new Error('usage: wan-model.ts generate <out.onnx> <blocks>');
  const t0 = performance.now();
  const result = saveModel(buildWanModel(Number(blocks)), out, { externalData: true });
  const ms = performance.now() - t0;
  process.stdout.write(`${JSON.stringify({ result, ms, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
