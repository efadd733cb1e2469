// The op-type census of the graph onnxruntime actually executes: the model is opened in
// onnxruntime-node with `optimizedModelFilePath`, and the optimized graph is read back. Used by
// the census test (every quantized weight reaches an integer kernel) and the speed benchmark.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { DataType } from '../../src/graph/ir/dtype.ts';
import type { Node } from '../../src/graph/ir/node.ts';
import type { Value } from '../../src/graph/ir/value.ts';
import { loadModel } from '../../src/graph/serde/io.ts';

/** Ops that take integer weights on onnxruntime's CPU provider. */
export const INTEGER_KERNELS = new Set(['MatMulIntegerToFloat', 'QGemm', 'QLinearMatMul', 'MatMulNBits', 'DynamicQuantizeMatMul', 'MatMulInteger', 'QAttention']);

/** What the optimized graph holds. */
export interface Census {
  /** Node count per op type (domain-qualified for com.microsoft ops: `MatMulNBits`, not the domain). */
  ops: Record<string, number>;
  /** Nodes with {@link INTEGER_KERNELS} op types. */
  integerKernels: number;
  /**
   * Where a weight runs in float: a DequantizeLinear of a constant matrix, or a float
   * MatMul/Gemm whose weight is a DequantizeLinear output or a float constant made from a
   * quantized weight (named under a layer's `/qarvd/`).
   */
  floatWeights: string[];
  /**
   * Casts of a constant matrix left in the graph (an int4-stored weight that was not folded
   * into an int8 initializer at load: it would be widened on every call).
   */
  weightCasts: string[];
}

/** Opens `path` in onnxruntime-node (all optimizations, `sessionOptions` on top) and takes the census of the optimized graph. */
export async function optimizedCensus(path: string, sessionOptions: ort.InferenceSession.SessionOptions = {}): Promise<Census> {
  const dir = mkdtempSync(join(tmpdir(), 'qarvd-census-'));
  try {
    const optimized = join(dir, 'optimized.onnx');
    const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3, ...sessionOptions, optimizedModelFilePath: optimized });
    await session.release();
    return censusOf([...loadModel(optimized).graph.nodes()]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function censusOf(nodes: Node[]): Census {
  const ops: Record<string, number> = {};
  const floatWeights: string[] = [];
  const isStoredMatrix = (v: Value | null | undefined) => Boolean(v?.initializer && v.initializer.dims.length >= 2);
  // A constant matrix, or one behind a Cast that was not folded (int4-storage).
  const isConstMatrix = (v: Value | null) => isStoredMatrix(v) || (v?.producer()?.opType === 'Cast' && isStoredMatrix(v.producer()!.input(0)));
  const weightCasts: string[] = [];
  const fromQuantized = (v: Value | null) => Boolean(v && ((v.producer()?.opType === 'DequantizeLinear' && isConstMatrix(v.producer()!.input(0))) || (v.initializer && v.initializer.dataType === DataType.FLOAT && v.name.includes('/qarvd/'))));
  for (const n of nodes) {
    ops[n.opType] = (ops[n.opType] ?? 0) + 1;
    if (n.opType === 'Cast' && isStoredMatrix(n.input(0))) weightCasts.push(`Cast of ${n.input(0)!.name}`);
    if (n.opType === 'DequantizeLinear' && isConstMatrix(n.input(0))) floatWeights.push(`DequantizeLinear of ${n.input(0)!.name}`);
    if ((n.opType === 'MatMul' || n.opType === 'Gemm' || n.opType === 'FusedMatMul') && n.inputs.some((v, i) => i > 0 && fromQuantized(v))) floatWeights.push(`float ${n.opType} ${n.name}`);
  }
  const integerKernels = nodes.filter((n) => INTEGER_KERNELS.has(n.opType)).length;
  return { ops, integerKernels, floatWeights, weightCasts };
}
