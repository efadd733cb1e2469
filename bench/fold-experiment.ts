// What folding a split layer's channel selection into its producer would buy, measured without
// building it into the pass: the Wan-shaped block (test/helpers/wan-block.ts, with outliers)
// with q's and ffn.0's output columns (weight columns and bias) permuted so that the input
// channels q-arvd split off in o and ffn.2 come last, and o's and ffn.2's weight rows permuted
// alike: the same function (checked against the original in onnxruntime). Quantized again
// (bench/dual-profile.ts with this model as its fp32), q-arvd detects the same channels, now
// contiguous, and emits a Slice instead of a Gather. docs/dual-scale-speed.md reports it.
//
//   node --import tsx bench/fold-experiment.ts <q-arvd model of the block> <out fp32.onnx>
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Graph } from '../src/graph/ir/graph.ts';
import { Tensor } from '../src/graph/ir/tensor.ts';
import { loadModel, saveModel } from '../src/graph/serde/io.ts';
import { seededRandom } from '../src/kernels/random.ts';
import { WAN_SHAPE, wanBlock } from '../test/helpers/wan-block.ts';

/** Moves `last` (input channels of `consumer`) after the others: `producer`'s output columns and bias, `consumer`'s weight rows. */
function moveLast(g: Graph, producer: string, consumer: string, last: number[]): void {
  const inits = g.initializers;
  const get = (name: string) => inits.get(name)!;
  const [w, b, c] = [get(`${producer}.weight`), get(`${producer}.bias`), get(`${consumer}.weight`)];
  const [rows, K] = w.initializer!.dims as [number, number];
  const N = c.initializer!.dims[1] as number;
  const moved = new Set(last);
  // New channel i is old channel order[i].
  const order = [...Array.from({ length: K }, (_, k) => k).filter((k) => !moved.has(k)), ...[...moved].sort((p, q) => p - q)];
  const [wd, bd, cd] = [w, b, c].map((v) => v.initializer!.toFloat32());
  const w2 = new Float32Array(wd!.length);
  for (let r = 0; r < rows; r++) for (let i = 0; i < K; i++) w2[r * K + i] = wd![r * K + order[i]!]!;
  const c2 = new Float32Array(cd!.length);
  order.forEach((k, i) => c2.set(cd!.subarray(k * N, (k + 1) * N), i * N));
  w.initializer = Tensor.fromFloat32(w.name, [rows, K], w2);
  b.initializer = Tensor.fromFloat32(b.name, [K], Float32Array.from(order, (k) => bd![k]!));
  c.initializer = Tensor.fromFloat32(c.name, [K, N], c2);
}

async function main(): Promise<void> {
  const [qarvdPath, out] = process.argv.slice(2);
  if (!qarvdPath || !out) throw new Error('usage: fold-experiment.ts <q-arvd model of the block> <out fp32.onnx>');
  const split = loadModel(qarvdPath).graph.initializers;
  const model = wanBlock({ outliers: true });
  for (const [producer, consumer] of [['q', 'o'], ['ffn.0', 'ffn.2']] as const) {
    const channels = split.get(`${consumer}/MatMul/qarvd/outlier/channels`)?.initializer?.toNumbers();
    if (!channels) throw new Error(`${qarvdPath}: no outlier channels for ${consumer}`);
    moveLast(model.graph, producer, consumer, channels);
    console.log(`${consumer}: ${channels.length} outlier channels moved last`);
  }
  saveModel(model, out);
  // The same function: the permuted block against the original on 16 rows.
  const dir = mkdtempSync(join(tmpdir(), 'fold-'));
  try {
    saveModel(wanBlock({ outliers: true }), join(dir, 'original.onnx'));
    const x = new ort.Tensor('float32', seededRandom(3).normalArray(16 * WAN_SHAPE.dim), [16, WAN_SHAPE.dim]);
    const run = async (p: string) => {
      const s = await ort.InferenceSession.create(p);
      const y = Object.values(await s.run({ x }))[0]!.data as Float32Array;
      await s.release();
      return y;
    };
    const [a, o] = [await run(out), await run(join(dir, 'original.onnx'))];
    console.log(`max |permuted − original| over 16 rows: ${a.reduce((m, v, i) => Math.max(m, Math.abs(v - o[i]!)), 0)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
