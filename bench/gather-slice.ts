// What the outlier branch's Gather costs against a Slice of as many contiguous channels (what
// it would be if the producing layer's output columns were permuted so the outlier channels come
// last): Wan's ffn.2 input, [1560, 8960] float32, 180 channels, 1 thread, CPU time of the call
// (60 rounds, alternating). docs/dual-scale-speed.md reports what it showed.
//
//   node --import tsx bench/gather-slice.ts
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
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
const K = 8960, k = 180, M = 1560;
function build(kind: 'gather' | 'slice', path: string) {
  const g = new Graph({ name: kind });
  const m = new Model(g, { opset: 20 });
  const x = new Value('x', { type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'rows' }, { dim_value: K }] } } } });
  g.addInput(x);
  const i64 = (name: string, v: number[]) => { const val = new Value(name, { initializer: Tensor.fromBytes(name, DataType.INT64, [v.length], new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer)) }); g.addInitializer(val); return val; };
  let n: Node;
  if (kind === 'gather') {
    const idx = Array.from({ length: k }, (_, i) => 3 + 50 * i);
    const iv = new Value('idx', { initializer: Tensor.fromBytes('idx', DataType.INT32, [k], new Uint8Array(Int32Array.from(idx).buffer)) }); g.addInitializer(iv);
    n = new Node({ opType: 'Gather', name: 'g', inputs: [x, iv], outputs: ['y'], attributes: [attr.int('axis', -1)] });
  } else {
    n = new Node({ opType: 'Slice', name: 's', inputs: [x, i64('st', [K - k]), i64('en', [K]), i64('ax', [-1])], outputs: ['y'] });
  }
  g.append(n);
  const y = n.output(0); y.type = { tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_param: 'rows' }, { dim_value: k }] } } };
  g.addOutput(y);
  saveModel(m, path);
}
async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gather-slice-'));
  build('gather', join(dir, 'g.onnx'));
  build('slice', join(dir, 's.onnx'));
  const x = new ort.Tensor('float32', seededRandom(1).normalArray(M * K), [M, K]);
  const sess = { gather: await ort.InferenceSession.create(join(dir, 'g.onnx'), { intraOpNumThreads: 1 }), slice: await ort.InferenceSession.create(join(dir, 's.onnx'), { intraOpNumThreads: 1 }) };
  const res: Record<string, number[]> = { gather: [], slice: [] };
  for (let r = 0; r < 60; r++) for (const [n, s] of Object.entries(sess)) { const c = process.cpuUsage(); await s.run({ x }); const d = process.cpuUsage(c); res[n]!.push((d.user + d.system) / 1000); }
  for (const [n, t] of Object.entries(res)) { t.sort((a, b) => a - b); console.log(n, 'cpu ms median', t[30]!.toFixed(2), 'p10', t[6]!.toFixed(2), 'p90', t[54]!.toFixed(2)); }
  rmSync(dir, { recursive: true, force: true });
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
