// A generated model with many large weights whose bytes are produced on demand
// (Tensor.lazy), for the external-data tests and the benchmark. Also a small CLI, run in a
// child process so that its peak RSS can be measured on its own:
//
//   node --import tsx test/helpers/big-model.ts generate <out.onnx> <count> <mib> [auto|external]
//   node --import tsx test/helpers/big-model.ts resave <in.onnx> <out.onnx> [auto|external]
//
// Each prints one JSON line: the SaveResult, timings and process.resourceUsage().maxRSS in bytes.
import { pathToFileURL } from 'node:url';
import { attr } from '../../src/graph/ir/attribute.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Node } from '../../src/graph/ir/node.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { loadModel, saveModel, type SaveResult } from '../../src/graph/serde/io.ts';

export const MIB = 2 ** 20;

/** Element `j` of weight `i`: small integers, exact in float32, different for every weight. */
export function patternValue(i: number, j: number): number {
  return i * 256 + (j % 256);
}

/** The bytes of weight `i` (`bytes` long): a 1 KiB period of {@link patternValue}. */
export function patternBytes(i: number, bytes: number): Uint8Array {
  const period = Buffer.from(Float32Array.from({ length: 256 }, (_, j) => patternValue(i, j)).buffer);
  return Buffer.alloc(bytes, period);
}

/**
 * `count` float32 weights of `mib` MiB each, generated on demand, in a valid graph:
 * y = x + Σ_i ReduceSum(w_i) (opset 13), x and y float32 [1].
 */
export function buildPatternModel(count: number, mib: number): Model {
  const g = new Graph({ name: 'pattern' });
  const model = new Model(g, { irVersion: 8, opset: 13 });
  model.producerName = 'qarvd-test';
  const f32 = (dims: number[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });
  const x = new Value('x', { type: f32([1]) });
  g.addInput(x);
  const elements = (mib * MIB) / 4;
  const sums: Value[] = [];
  for (let i = 0; i < count; i++) {
    const name = `w${i}`;
    const w = new Value(name, { initializer: Tensor.lazy(name, DataType.FLOAT, [elements], () => patternBytes(i, mib * MIB)) });
    g.addInitializer(w);
    const r = new Node({ opType: 'ReduceSum', inputs: [w], outputs: [`s${i}`], attributes: [attr.int('keepdims', 1)] });
    g.append(r);
    sums.push(r.outputs[0]!);
  }
  const sum = new Node({ opType: 'Sum', inputs: [x, ...sums], outputs: ['y'] });
  g.append(sum);
  const y = sum.outputs[0]!;
  y.type = f32([1]);
  g.addOutput(y);
  return model;
}

/** What the CLI prints. */
export interface ChildReport {
  result: SaveResult;
  loadMs: number;
  saveMs: number;
  /** process.resourceUsage().maxRSS, converted to bytes. */
  maxRssBytes: number;
  /** Weights checked against the pattern after loading (resave only). */
  checked: number;
}

const mode = (s: string | undefined): boolean | 'auto' => (s === 'external' ? true : 'auto');

async function main(argv: string[]): Promise<void> {
  const [cmd, ...args] = argv;
  let report: ChildReport;
  if (cmd === 'generate') {
    const [out, count, mib, how] = args;
    const t0 = performance.now();
    const model = buildPatternModel(Number(count), Number(mib));
    const t1 = performance.now();
    const result = saveModel(model, out!, { externalData: mode(how) });
    const t2 = performance.now();
    report = { result, loadMs: t1 - t0, saveMs: t2 - t1, maxRssBytes: 0, checked: 0 };
  } else if (cmd === 'resave') {
    const [input, out, how] = args;
    const t0 = performance.now();
    const model = loadModel(input!);
    const t1 = performance.now();
    // Check the first and the last weight's pattern (one at a time, not kept).
    const inits = [...model.graph.initializers.values()];
    let checked = 0;
    for (const i of [0, inits.length - 1]) {
      const t = inits[i]!.initializer!;
      if (Buffer.compare(t.bytes(), patternBytes(i, t.byteLength)) !== 0) throw new Error(`weight ${t.name} does not hold its pattern`);
      checked++;
    }
    const t2 = performance.now();
    const result = saveModel(model, out!, { externalData: mode(how) });
    const t3 = performance.now();
    report = { result, loadMs: t1 - t0, saveMs: t3 - t2, maxRssBytes: 0, checked };
  } else {
    throw new Error(`usage: big-model.ts generate <out> <count> <mib> [auto|external] | resave <in> <out> [auto|external]`);
  }
  report.maxRssBytes = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((e: Error) => {
    process.stderr.write(`${e.stack ?? e.message}\n`);
    process.exit(1);
  });
}
