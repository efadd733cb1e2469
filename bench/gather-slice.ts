// What the outlier branch's Gather of channels costs, against two other ways of reading them:
// `Expand` of the channel indices to [rows, k] then `GatherElements` (the same values, an op
// whose CPU kernel indexes element by element without a copy call per element), and a `Slice`
// of k contiguous channels (what the channels would cost if the producing layer's output
// columns were permuted so the outliers come last). Wan's ffn.2 input, [1560, 8960] float32,
// 180 channels (every 50th), 1 thread; CPU time of each call (process.cpuUsage; the load on the
// shared machine moves wall time far more), 60 rounds, the models in turn.
// docs/dual-scale-speed.md reports what it showed.
//
//   node --import tsx bench/gather-slice.ts [rows=1560] [K=8960] [k=180]
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { attr } from '../src/graph/ir/attribute.ts';
import { DataType } from '../src/graph/ir/dtype.ts';
import { Graph } from '../src/graph/ir/graph.ts';
import { Model } from '../src/graph/ir/model.ts';
import { Node } from '../src/graph/ir/node.ts';
import { Tensor } from '../src/graph/ir/tensor.ts';
import { Value } from '../src/graph/ir/value.ts';
import { saveModel } from '../src/graph/serde/io.ts';
import { seededRandom } from '../src/kernels/random.ts';

const [M = 1560, K = 8960, k = 180] = process.argv.slice(2).map(Number);
const KINDS = ['gather', 'gather-elements', 'slice'] as const;

function build(kind: (typeof KINDS)[number], path: string): void {
  const g = new Graph({ name: kind });
  const m = new Model(g, { opset: 20 });
  const f32 = (n: number) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'rows' }, { dim_value: n }] } } });
  const x = new Value('x', { type: f32(K) });
  g.addInput(x);
  const i64 = (name: string, dims: number[], v: number[]) => {
    const val = new Value(name, { initializer: Tensor.fromBytes(name, DataType.INT64, dims, new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer)) });
    g.addInitializer(val);
    return val;
  };
  const node = (opType: string, inputs: Value[], attributes: ReturnType<typeof attr.int>[] = []) => {
    const n = new Node({ opType, name: opType, inputs, outputs: [`${opType}_out`], attributes });
    g.append(n);
    return n.output(0);
  };
  const channels = Array.from({ length: k }, (_, i) => 3 + Math.floor((i * K) / k));
  let y: Value;
  if (kind === 'gather') y = node('Gather', [x, i64('idx', [k], channels)], [attr.int('axis', -1)]);
  else if (kind === 'slice') y = node('Slice', [x, i64('starts', [1], [K - k]), i64('ends', [1], [K]), i64('axes', [1], [-1])]);
  else {
    // [rows, 1] from X's shape, the [1, k] indices broadcast to [rows, k].
    const rows = node('Shape', [x], [attr.int('start', 0), attr.int('end', -1)]);
    const shape = node('Concat', [rows, i64('one', [1], [1])], [attr.int('axis', 0)]);
    const idx = node('Expand', [i64('idx', [1, k], channels), shape]);
    y = node('GatherElements', [x, idx], [attr.int('axis', -1)]);
  }
  y.type = f32(k);
  g.addOutput(y);
  saveModel(m, path);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gather-slice-'));
  try {
    const x = new ort.Tensor('float32', seededRandom(1).normalArray(M * K), [M, K]);
    const sessions = [];
    for (const kind of KINDS) {
      build(kind, join(dir, `${kind}.onnx`));
      sessions.push(await ort.InferenceSession.create(join(dir, `${kind}.onnx`), { intraOpNumThreads: 1, interOpNumThreads: 1 }));
    }
    // The two gathers must agree exactly.
    const [a, b] = await Promise.all(sessions.slice(0, 2).map(async (s) => (await s.run({ x }))[s.outputNames[0]!]!.data as Float32Array));
    if (a!.length !== b!.length || a!.some((v, i) => v !== b![i])) throw new Error('Gather and GatherElements differ');
    const cpu = sessions.map(() => [] as number[]);
    const load0 = loadavg()[0]!;
    for (let r = 0; r < 60; r++) {
      for (let i = 0; i < sessions.length; i++) {
        const c = process.cpuUsage();
        await sessions[i]!.run({ x });
        const d = process.cpuUsage(c);
        cpu[i]!.push((d.user + d.system) / 1000);
      }
    }
    console.log(`rows ${M}, ${k} of ${K} channels, 60 rounds, load ${load0.toFixed(1)}–${loadavg()[0]!.toFixed(1)}; CPU ms per call, median [p10–p90]:`);
    KINDS.forEach((kind, i) => {
      const t = cpu[i]!.sort((p, q) => p - q);
      console.log(`  ${kind.padEnd(16)} ${t[30]!.toFixed(2)} [${t[6]!.toFixed(2)}–${t[54]!.toFixed(2)}]`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
