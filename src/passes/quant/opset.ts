import { attr } from '../../graph/ir/attribute.ts';
import { DataType } from '../../graph/ir/dtype.ts';
import type { Graph } from '../../graph/ir/graph.ts';
import type { Model } from '../../graph/ir/model.ts';
import { Tensor } from '../../graph/ir/tensor.ts';

/**
 * Versions at which a default-domain operator changed meaning or interface for graphs that
 * already use it (new types and new optional attributes with neutral defaults do not count).
 * Sources: the ONNX operator changelog (Changelog.md), opsets 7–21.
 */
const BREAKING: Record<string, number[]> = {
  // attributes became inputs
  Slice: [10], Pad: [11], Clip: [11], Split: [13, 18], Squeeze: [13], Unsqueeze: [13], ReduceSum: [13],
  TopK: [10], Upsample: [10], Resize: [11],
  ReduceMean: [18], ReduceMax: [18], ReduceMin: [18], ReduceProd: [18], ReduceL1: [18], ReduceL2: [18],
  ReduceLogSum: [18], ReduceLogSumExp: [18], ReduceSumSquare: [18],
  DFT: [20],
  // semantics changed
  Softmax: [13], LogSoftmax: [13], Hardmax: [13], Dropout: [10, 12], BatchNormalization: [9, 14, 15],
  RoiAlign: [16], GridSample: [20], GroupNormalization: [21], Scatter: [11], AveragePool: [10, 11],
  MaxPool: [10, 11, 12], Mod: [10], Flatten: [11], Gemm: [11], ArgMax: [11, 12], ArgMin: [11, 12],
  Cast: [9, 13], Concat: [11], Gather: [11], Compress: [11], OneHot: [11], Range: [11],
  Where: [9], Expand: [8], Min: [8, 12], Max: [8, 12], Sum: [8], Mean: [8],
  Loop: [11], If: [11], Scan: [9, 11], ConvTranspose: [11], Conv: [11], LpPool: [11],
  DepthToSpace: [11, 13], SpaceToDepth: [13], NonMaxSuppression: [11],
};

/** Reductions whose `axes` moved from an attribute to an input at opset 18: adapted, not refused. */
const AXES_TO_INPUT_AT_18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']);

/**
 * Split from opset 18 needs its `split` input or a `num_outputs` attribute: without the input
 * (equal parts, one per output) it is adapted by giving it `num_outputs`, which means the same.
 */
const ADAPTED_AT_18 = (opType: string): boolean => AXES_TO_INPUT_AT_18.has(opType) || opType === 'Split';

/** What {@link raiseOpset}'s error advises by default: onnxruntime's Q/DQ work at any opset (the option of pass `pass`). */
export function qdqDomainAdvice(pass = 'q-arvd'): string {
  return `use --${pass}.qdq-domain com.microsoft to emit onnxruntime's Q/DQ, which work at any opset`;
}

/**
 * Raises the default-domain opset import to `needed` when every operator already in the
 * model means the same there. Reductions whose `axes` attribute became an input at 18 are
 * rewritten (the attribute becomes an int64 initializer), and a Split without its `split`
 * input gets `num_outputs` at 18, which preserves their meaning.
 * Otherwise throws, naming the first operator (and node) that would change meaning, then `advice`.
 * @returns the version before, or undefined when no change was needed
 */
export function raiseOpset(model: Model, needed: number, why: string, advice = qdqDomainAdvice()): number | undefined {
  const current = model.opset('') ?? 1;
  if (current >= needed) return undefined;
  const adaptable = [];
  for (const g of allGraphs(model.graph)) {
    for (const n of g) {
      if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
      const changes = (BREAKING[n.opType] ?? []).filter((v) => v > current && v <= needed);
      if (changes.length === 0) continue;
      if (changes.every((v) => v === 18) && ADAPTED_AT_18(n.opType)) {
        adaptable.push({ g, n });
        continue;
      }
      throw new Error(
        `${why} needs opset ${needed}, but the model imports opset ${current} and ${n.opType} (node ${n.name || '(unnamed)'}) changed meaning at opset ${changes.join(', ')}; ` +
          advice,
      );
    }
  }
  for (const { g, n } of adaptable) {
    if (n.opType === 'Split') {
      if (!n.input(1)) {
        // An omitted `split` given as '' must go too: from 18 num_outputs excludes the input.
        const x = n.input(0);
        n.clearInputs();
        n.appendInput(x);
        n.attributes.set('num_outputs', attr.int('num_outputs', n.outputs.length));
      }
      continue;
    }
    const axes = n.intsAttr('axes');
    n.attributes.delete('axes');
    if (axes) {
      const v = g.createInitializer(`${n.name || n.opType}/axes`, (name) => Tensor.fromBytes(name, DataType.INT64, [axes.length], new Uint8Array(BigInt64Array.from(axes, BigInt).buffer)));
      n.setInput(1, v);
    }
  }
  model.opsetImports.set('', needed);
  return current;
}

/** The model graph and all nested subgraphs. */
export function allGraphs(g: Graph): Graph[] {
  const out = [g];
  for (const n of g) for (const s of n.subgraphs()) out.push(...allGraphs(s));
  return out;
}

/** Adds a domain's opset import when missing (e.g. com.microsoft version 1). */
export function ensureDomain(model: Model, domain: string, version = 1): void {
  if (!model.opsetImports.has(domain)) model.opsetImports.set(domain, version);
}
