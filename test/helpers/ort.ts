// onnxruntime-node helpers for tests: seeded feeds from a session's declared inputs, running a
// model from a path or bytes, and a bit-exact comparison of outputs.
import * as ort from 'onnxruntime-node';
import { seededRandom, type SeededRandom } from '../../src/kernels/random.ts';

/** How one input is filled. The default is standard normal for floats and uniform ints in [0, 16) for integers. */
export type InputFill =
  | { kind: 'normal' }
  | { kind: 'uniform'; low: number; high: number }
  | { kind: 'int'; high: number }
  | { kind: 'ones' }
  | { kind: 'arange'; start?: number };

/** What {@link seededFeeds} needs beyond the session: values for symbolic dims, per-input fills. */
export interface FeedSpec {
  seed?: number;
  /** Values of symbolic dimensions by name (`batch`, `seq`, …); `a + b` expressions are summed. */
  dims?: Record<string, number>;
  /** Fill per input name. */
  fill?: Record<string, InputFill>;
}

/** Sessions run on one thread, so that bit-identity is a property of the model, not of scheduling. */
export const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };

/** Opens a session from a file (external data resolves beside it) or from bytes. */
export async function openSession(model: string | Uint8Array): Promise<ort.InferenceSession> {
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, SESSION_OPTIONS)
    : ort.InferenceSession.create(model, SESSION_OPTIONS);
}

/** Resolves a declared shape: numbers stay, symbolic dims (and `a + b` sums of them) come from `dims`. */
export function concreteShape(input: string, shape: ReadonlyArray<number | string>, dims: Record<string, number>): number[] {
  return shape.map((d) => {
    if (typeof d === 'number') return d;
    let total = 0;
    for (const term of d.split('+').map((s) => s.trim())) {
      const n = /^\d+$/.test(term) ? Number(term) : dims[term];
      if (n === undefined) throw new Error(`input ${input}: no value for symbolic dim "${term}" (give it in FeedSpec.dims)`);
      total += n;
    }
    return total;
  });
}

/** Seeded feeds for every input the session declares (ORT's `inputMetadata`). */
export function seededFeeds(session: ort.InferenceSession, spec: FeedSpec = {}): Record<string, ort.Tensor> {
  const rng = seededRandom(spec.seed ?? 1234);
  const feeds: Record<string, ort.Tensor> = {};
  for (const meta of session.inputMetadata) {
    if (!meta.isTensor) throw new Error(`input ${meta.name}: not a tensor; seededFeeds only makes tensors`);
    const shape = concreteShape(meta.name, meta.shape, spec.dims ?? {});
    feeds[meta.name] = makeTensor(meta.name, meta.type, shape, spec.fill?.[meta.name], rng);
  }
  return feeds;
}

function makeTensor(name: string, type: ort.Tensor.Type, shape: number[], fill: InputFill | undefined, rng: SeededRandom): ort.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const last = shape[shape.length - 1] ?? 1;
  const f = fill ?? (type === 'float32' || type === 'float64' ? { kind: 'normal' } : { kind: 'int', high: 16 });
  const value = (i: number): number => {
    switch (f.kind) {
      case 'normal': return rng.normal();
      case 'uniform': return f.low + (f.high - f.low) * rng.next();
      case 'int': return rng.int(f.high);
      case 'ones': return 1;
      case 'arange': return (f.start ?? 0) + (i % last);
    }
  };
  const values = Array.from({ length: n }, (_, i) => value(i));
  switch (type) {
    case 'float32': return new ort.Tensor('float32', Float32Array.from(values), shape);
    case 'float64': return new ort.Tensor('float64', Float64Array.from(values), shape);
    case 'int64': return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(Math.trunc(v))), shape);
    case 'int32': return new ort.Tensor('int32', Int32Array.from(values, Math.trunc), shape);
    case 'bool': return new ort.Tensor('bool', Uint8Array.from(values, (v) => (v ? 1 : 0)), shape);
    default: throw new Error(`input ${name}: seededFeeds does not make ${type} tensors`);
  }
}

/** Runs a model once (from a path or bytes) and returns every output; the session is released. */
export async function runModel(model: string | Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await openSession(model);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Seeded feeds for a model's declared inputs, from a path or bytes. */
export async function feedsFor(model: string | Uint8Array, spec: FeedSpec = {}): Promise<Record<string, ort.Tensor>> {
  const session = await openSession(model);
  try {
    return seededFeeds(session, spec);
  } finally {
    await session.release();
  }
}

/** The raw bytes of a tensor's data (numeric tensors only). */
export function tensorBytes(t: ort.Tensor): Uint8Array {
  const d = t.data as ArrayBufferView;
  if (typeof (t.data as unknown[])[0] === 'string') throw new Error('tensorBytes: string tensor');
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/**
 * Compares two sets of outputs bit for bit (names, types, dims and data bytes, so NaN
 * payloads and -0 count). Returns undefined when identical, else the first difference.
 */
export function diffOutputs(a: Record<string, ort.Tensor>, b: Record<string, ort.Tensor>): string | undefined {
  const na = Object.keys(a).sort();
  const nb = Object.keys(b).sort();
  if (na.join('\n') !== nb.join('\n')) return `output names differ: [${na.join(', ')}] vs [${nb.join(', ')}]`;
  for (const name of na) {
    const x = a[name]!;
    const y = b[name]!;
    if (x.type !== y.type) return `${name}: type ${x.type} vs ${y.type}`;
    if (x.dims.join('x') !== y.dims.join('x')) return `${name}: dims [${x.dims.join('x')}] vs [${y.dims.join('x')}]`;
    const bx = tensorBytes(x);
    const by = tensorBytes(y);
    if (bx.byteLength !== by.byteLength) return `${name}: ${bx.byteLength} vs ${by.byteLength} bytes`;
    if (Buffer.compare(bx, by) !== 0) {
      let i = 0;
      while (bx[i] === by[i]) i++;
      const el = Math.floor(i / (bx.byteLength / x.size));
      return `${name}: first difference at element ${el} (${String((x.data as ArrayLike<unknown>)[el])} vs ${String((y.data as ArrayLike<unknown>)[el])})`;
    }
  }
  return undefined;
}
