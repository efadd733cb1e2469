/**
 * onnxruntime's float64 `MatMul` as the synchronous {@link MatMul64} the reconstruction kernels
 * take (src/kernels/gptq.ts, cholesky.ts): GPTQ at Wan2.1 scale (K = 8960) is about 4·10¹¹
 * multiply-adds of products, an hour of JavaScript loops and a minute of onnxruntime's
 * double-precision GEMM.
 *
 * The kernels are synchronous and onnxruntime-node's `run` is not, so the session lives in a
 * worker thread: the caller copies the operands into fresh buffers, transfers them to the
 * worker (onnxruntime-node refuses views of a SharedArrayBuffer, and the kernels' operands are
 * often views into larger arrays, which a message would copy whole), and blocks in
 * `Atomics.wait` on a shared flag until the worker has posted the product back (read with
 * `receiveMessageOnPort`, which needs no event loop). The worker sends large operands' buffers
 * ({@link REUSE_BYTES}) back with the product and the next large product copies into them: a
 * fresh buffer costs its page faults on every call (GPTQ's batch update passes a growing prefix
 * of the K×N error matrix, up to 110 MB at Wan's `ffn.2`: 0.3 s to copy into new memory here,
 * against 0.1 s for the product itself). Small operands are not sent back: every buffer that
 * arrives in a thread counts as new external memory there, and V8 answers with a garbage
 * collection (the blocked Cholesky's 629 products of `ffn.2`, with every buffer returned, ran
 * 2,400 collections and took 3–4 s longer). The worker starts on the first product
 * large enough to pay for it, so small models never start it and keep the plain JavaScript
 * product, bit for bit as before. A float64 MatMul rounds differently from the JavaScript loop
 * (another summation order), at the level of 10⁻¹⁶ relative.
 */
import { createRequire } from 'node:module';
import { MessageChannel, type MessagePort, receiveMessageOnPort, Worker } from 'node:worker_threads';
import { DataType } from '../../graph/ir/dtype.ts';
import { Graph } from '../../graph/ir/graph.ts';
import { Model } from '../../graph/ir/model.ts';
import { Node } from '../../graph/ir/node.ts';
import { Value } from '../../graph/ir/value.ts';
import { encodeModel } from '../../graph/proto/codec.ts';
import { inlineSink } from '../../graph/serde/external-sink.ts';
import { modelToProto } from '../../graph/serde/to-proto.ts';
import { type MatMul64, matmul64 } from '../../kernels/matmul.ts';

/** Options of {@link openOrtMatMul}. */
export interface OrtMatMulOptions {
  /** onnxruntime intra-op threads (0: onnxruntime's default, one per core). */
  threads: number;
  /**
   * Products of fewer multiply-adds stay in JavaScript (default 2²²: about 5 ms of JavaScript,
   * against a fraction of a millisecond of hand-over to the worker).
   */
  minMultiplyAdds?: number;
  /** How long one product may take before the worker is given up as hung (default 10 minutes). */
  timeoutMs?: number;
}

/** A {@link MatMul64} backed by onnxruntime; `close` ends its worker (if it was started). */
export interface OrtMatMul {
  matmul: MatMul64;
  /** Products computed by onnxruntime so far. */
  readonly products: number;
  /** Operands copied into a buffer an earlier product sent back (see the module doc). */
  readonly reused: number;
  close(): void;
}

/** The worker: one MatMul session; each message is one product, answered on the port. */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { port, ctrl, model, threads, ortPath, reuseBytes } = workerData;
const answer = (message, transfer = []) => {
  port.postMessage(message, transfer);
  Atomics.store(ctrl, 0, 1);
  Atomics.notify(ctrl, 0);
};
const failed = (e) => answer({ error: String((e && e.message) || e) });
// Every failure is answered: the caller is blocked and sees nothing else.
let opened;
try {
  const ort = require(ortPath);
  // No memory arena: products of hundreds of MB would otherwise stay reserved after use.
  const options = { enableCpuMemArena: false, ...(threads > 0 ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}) };
  opened = ort.InferenceSession.create(model, options).then((session) => ({ ort, session }));
} catch (e) {
  opened = Promise.reject(e);
}
opened.then(() => answer({ ready: true }), failed);
port.on('message', async ({ a, b, m, k, n }) => {
  try {
    const { ort, session } = await opened;
    // The operands are views at the start of buffers that may be larger (reused, see the module doc).
    const out = await session.run({ a: new ort.Tensor('float64', new Float64Array(a, 0, m * k), [m, k]), b: new ort.Tensor('float64', new Float64Array(b, 0, k * n), [k, n]) });
    // Transferred, not copied: cloning a product of hundreds of MB took longer than computing it.
    // Large operands' buffers go back for the next product's copies (see the module doc).
    const back = { a: a.byteLength >= reuseBytes ? a : undefined, b: b.byteLength >= reuseBytes ? b : undefined };
    answer({ c: out.c.data, ...back }, [out.c.data.buffer, ...Object.values(back).filter(Boolean)]);
  } catch (e) {
    failed(e);
  }
});
`;

/** The worker's answer: the product and the operands' buffers, or what failed. */
interface Answer {
  c?: Float64Array;
  a?: ArrayBuffer;
  b?: ArrayBuffer;
  error?: string;
}

/**
 * Operands of at least this many bytes travel in reused buffers (see the module doc): below it a
 * fresh buffer's page faults cost less than the garbage collection a returned buffer triggers.
 */
export const REUSE_BYTES = 32 * 2 ** 20;

/**
 * The first `length` values of `src` in a buffer for the worker: in `spare` when the operand is
 * large ({@link REUSE_BYTES}) and `spare` holds it; else a new buffer, for a large operand a
 * quarter larger than needed (GPTQ's operands grow by one batch of rows per call, so most calls
 * then fit the buffer of an earlier one).
 */
function copyInto(spare: ArrayBuffer | undefined, src: Float64Array, length: number): ArrayBuffer {
  const bytes = length * Float64Array.BYTES_PER_ELEMENT;
  if (bytes < REUSE_BYTES) return src.slice(0, length).buffer;
  const target = spare && spare.byteLength >= bytes ? spare : new ArrayBuffer(Math.ceil((length * 5) / 4) * Float64Array.BYTES_PER_ELEMENT);
  new Float64Array(target, 0, length).set(src.subarray(0, length));
  return target;
}

/** The spare for an operand of `length` values: kept when it will be used or may be later, dropped when too small for a large operand (which replaces it). */
function spareFor(spare: ArrayBuffer | undefined, length: number): ArrayBuffer | undefined {
  const bytes = length * Float64Array.BYTES_PER_ELEMENT;
  return spare && bytes >= REUSE_BYTES && spare.byteLength < bytes ? undefined : spare;
}

/** A flag nobody sets: `Atomics.wait` on it is a sleep. */
const NAP = new Int32Array(new SharedArrayBuffer(4));

/**
 * A synchronous float64 product through onnxruntime (see the module doc). Products below
 * `minMultiplyAdds` use {@link matmul64}.
 */
export function openOrtMatMul(options: OrtMatMulOptions): OrtMatMul {
  const minMultiplyAdds = options.minMultiplyAdds ?? 2 ** 22;
  const timeoutMs = options.timeoutMs ?? 600_000;
  let worker: { thread: Worker; port: MessagePort; ctrl: Int32Array } | undefined;
  let products = 0;
  let reused = 0;
  // The operand buffers the worker sent back, reused by the next product (see the module doc).
  const spare: { a?: ArrayBuffer; b?: ArrayBuffer } = {};

  /** Blocks until the worker answers; its message, or an error naming what failed. */
  const awaitAnswer = (port: MessagePort, ctrl: Int32Array, what: string): Answer => {
    if (Atomics.wait(ctrl, 0, 0, timeoutMs) === 'timed-out') throw new Error(`onnxruntime matmul: no answer to ${what} within ${timeoutMs / 1000} s`);
    let message = receiveMessageOnPort(port)?.message as Answer | undefined;
    // The flag can be seen before the posted message reaches this end of the port (seen once in
    // CI): poll for it in 1 ms naps for a few seconds before calling it missing.
    for (let waited = 0; !message && waited < 5_000; waited++) {
      Atomics.wait(NAP, 0, 0, 1);
      message = receiveMessageOnPort(port)?.message as Answer | undefined;
    }
    if (!message) throw new Error(`onnxruntime matmul: the worker signalled ${what} without an answer`);
    if (message.error !== undefined) throw new Error(`onnxruntime matmul: ${what} failed: ${message.error}`);
    return message;
  };

  const start = () => {
    const { port1, port2 } = new MessageChannel();
    const ctrl = new Int32Array(new SharedArrayBuffer(4));
    let ortPath: string;
    try {
      ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    } catch (e) {
      throw new Error(`onnxruntime matmul: onnxruntime-node is not installed (npm install onnxruntime-node@1.30.0): ${(e as Error).message}`);
    }
    const thread = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath, port: port2, ctrl, model: matmulModelBytes(), threads: options.threads, reuseBytes: REUSE_BYTES }, transferList: [port2] });
    thread.unref();
    try {
      awaitAnswer(port1, ctrl, 'opening the session');
    } catch (e) {
      port1.close();
      void thread.terminate();
      throw e;
    }
    return { thread, port: port1, ctrl };
  };

  const matmul: MatMul64 = (a, b, m, k, n) => {
    if (m * k * n < minMultiplyAdds) return matmul64(a, b, m, k, n);
    if (a.length < m * k || b.length < k * n) throw new RangeError(`onnxruntime matmul: operands of ${a.length} and ${b.length} values are not ${m}×${k} and ${k}×${n}`);
    worker ??= start();
    // A spare too small for a large operand is let go before its replacement is allocated.
    spare.a = spareFor(spare.a, m * k);
    spare.b = spareFor(spare.b, k * n);
    const aCopy = copyInto(spare.a, a, m * k);
    const bCopy = copyInto(spare.b, b, k * n);
    // A spare goes with the message (transferred) or stays; a large operand's buffer comes back.
    if (aCopy === spare.a) {
      spare.a = undefined;
      reused++;
    }
    if (bCopy === spare.b) {
      spare.b = undefined;
      reused++;
    }
    Atomics.store(worker.ctrl, 0, 0);
    worker.port.postMessage({ a: aCopy, b: bCopy, m, k, n }, [aCopy, bCopy]);
    const { c, a: aBack, b: bBack } = awaitAnswer(worker.port, worker.ctrl, `a ${m}×${k} by ${k}×${n} product`);
    spare.a = aBack ?? spare.a;
    spare.b = bBack ?? spare.b;
    products++;
    return c!;
  };

  return {
    matmul,
    get products() {
      return products;
    },
    get reused() {
      return reused;
    },
    close() {
      spare.a = spare.b = undefined;
      if (!worker) return;
      worker.port.close();
      void worker.thread.terminate();
      worker = undefined;
    },
  };
}

/** The model `c = MatMul(a, b)`, float64, every dimension dynamic (opset 13). */
export function matmulModelBytes(): Uint8Array {
  const g = new Graph({ name: 'matmul64' });
  const model = new Model(g, { irVersion: 8, opset: 13 });
  const type = (dims: string[]) => ({ tensor_type: { elem_type: DataType.DOUBLE, shape: { dim: dims.map((d) => ({ dim_param: d })) } } });
  const a = new Value('a', { type: type(['m', 'k']) });
  const b = new Value('b', { type: type(['k', 'n']) });
  g.addInput(a);
  g.addInput(b);
  const node = new Node({ opType: 'MatMul', inputs: [a, b], outputs: ['c'] });
  g.append(node);
  node.outputs[0]!.type = type(['m', 'n']);
  g.addOutput(node.outputs[0]!);
  return encodeModel(modelToProto(model, inlineSink));
}
