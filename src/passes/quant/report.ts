import { WEIGHT_CHOICE_CODES } from '../calibration/search.ts';
import type { CalibrationTable } from '../calibration/table.ts';
import type { QuantConfig } from './config.ts';
import type { FoldSkip, SplitFold } from './fold-split.ts';
import type { SkippedLayer } from './linear-layers.ts';
import type { LayerPlan, LayerReconstruction } from './plan.ts';
import type { SplitCheck } from './split-check.ts';

/** One candidate layer in the pass report (the schema). */
export interface LayerReportEntry {
  name: string;
  op: string;
  K?: number;
  N?: number;
  mode: 'dual' | 'single' | 'skipped';
  reason?: string;
  outliers: number;
  threshold?: number;
  median?: number;
  wBits?: number;
  aBits?: number | null;
  weightError?: { single: number; dual?: number };
  /**
   * Per-branch activation quantizers (role, scale, zero point, calibrated range); with the
   * scale search also the chosen candidate, every candidate's weighted output error, and the
   * branch's exact min/max per chunk.
   */
  activation?: ActivationReport[];
  /** Per-branch weight scale search: chosen candidates per output channel and the weighted error. */
  weightSearch?: { role: string; searched: boolean; choices?: Record<string, number>; error?: { minmax: number; chosen: number } }[];
  /** Relative output error of the layer per chunk over the reservoir rows, before and after the search. */
  outputError?: { chunks: number[]; before: number[]; after: number[] };
  /** Loss weights used for this layer: per-chunk α, or one (dual-alpha-one). */
  alpha?: 'chunk' | 'one';
  /**
   * Reconstruction from calibration statistics: the method, the α-weighted output error per
   * calibration row of round-to-nearest and of the final weights, the final error with the
   * mean shift removed by bias correction, the size of that shift, and dead input channels.
   */
  reconstruction?: LayerReconstruction;
  /** `dual-scale auto`: the corrected error per row of the single and the split form (the lower one was kept). */
  splitChoice?: { single: number; dual: number };
  /**
   * Where onnxruntime computes the layer: `integer` (its quantized kernels), or `float` (kept
   * fp32: the quantized weights dequantized once at load, one float MatMul; `computeReason` says why).
   */
  compute?: 'integer' | 'float';
  computeReason?: string;
}

/** One branch's activation quantizer in the report. */
export interface ActivationReport {
  role: string;
  channels: number;
  scale: number;
  zeroPoint: number;
  range: [number, number];
  candidate?: string;
  candidates?: { candidate: string; lo: number; hi: number; scale: number; zeroPoint: number; error: number }[];
  chunkMin?: number[];
  chunkMax?: number[];
}

/** The report `--report` writes and the API returns. */
export interface QuantReport {
  method: string;
  bits: string;
  format: string;
  layers: LayerReportEntry[];
  totals: { layers: Record<'dual' | 'single' | 'skipped', number>; bytesBefore: number; bytesAfter: number; ratio: number };
  /** How the activation scales were calibrated (absent for weight-only). */
  calibration?: {
    origin: string;
    kind?: 'feeds' | 'rollout';
    samples?: number;
    scaleSearch: boolean;
    /** Chunk tags seen. */
    chunks: number[];
    dualAlphaOne?: boolean;
    /** Where the sensitivity curve came from, with the raw mean squared differences when measured. */
    sensitivity?: { source: string; mse?: number[]; samples?: number };
    /** Wall time of each step in seconds (absent when loaded from a table). */
    seconds?: { collect: number; sensitivity: number; search: number };
  };
  /** fold-split: the split layers whose outlier channels were moved last through their producers, and the candidates left as they were with the reason. */
  foldSplit?: { folded: SplitFold[]; notFolded: FoldSkip[] };
  /** smooth-quant: α, inputs and layers smoothed, the range of the factors s. */
  smoothing?: { alpha: number; inputs: number; layers: number; factorRange: [number, number] };
  /** S1's chunk sensitivity curve, normalised to sum 1, per chunk of `calibration.chunks`. */
  sensitivity?: number[];
  /** α per chunk (aligned with `calibration.chunks`). */
  alpha?: number[];
  /** `dual-scale auto`'s check of its splits on the calibration rollouts (split-check.ts), when it ran or was read from a table. */
  splitCheck?: SplitCheck;
}

/** How a report entry's `computeReason` begins (the log line quotes the reason after it). */
export const KEPT_FP32 = 'kept fp32: ';

/** The report entry of a quantized layer. */
export function layerEntry(p: LayerPlan, config: QuantConfig): LayerReportEntry {
  const e: LayerReportEntry = {
    name: p.layer.name,
    op: p.layer.op,
    K: p.layer.K,
    N: p.layer.N,
    mode: p.mode,
    outliers: p.outliers.indices.length,
    threshold: p.outliers.threshold,
    median: p.outliers.median,
    wBits: config.wBits,
    aBits: config.aBits,
    weightError: p.weightError,
    ...(p.reconstruction ? { reconstruction: p.reconstruction } : {}),
    ...(p.splitChoice ? { splitChoice: p.splitChoice } : {}),
    compute: p.floatCompute ? 'float' : 'integer',
    ...(p.floatCompute ? { computeReason: `${KEPT_FP32}${p.floatCompute}` } : {}),
  };
  const acts = p.branches.filter((b) => b.act);
  if (acts.length) e.activation = acts.map((b) => ({ role: b.role, channels: b.K, scale: b.act!.scale, zeroPoint: b.act!.zeroPoint, range: b.act!.range }));
  return e;
}

/** The report entry of a skipped layer. */
export function skippedEntry(s: SkippedLayer): LayerReportEntry {
  return { name: s.name, op: s.op, K: s.K, N: s.N, mode: 'skipped', reason: s.reason, outliers: 0 };
}

/** Layer counts by mode and the weight bytes before and after. */
export function totals(entries: LayerReportEntry[], bytesBefore: number, bytesAfter: number): QuantReport['totals'] {
  const layers = { dual: 0, single: 0, skipped: 0 };
  for (const e of entries) layers[e.mode]++;
  return { layers, bytesBefore, bytesAfter, ratio: bytesBefore ? bytesAfter / bytesBefore : 1 };
}

/** Adds a calibration table's decisions to the report's layer entries, and its curve and α to the report. */
export function addCalibrationTable(report: QuantReport, table: CalibrationTable): void {
  if (table.sensitivity) {
    const { normalized, mse, samples, source } = table.sensitivity;
    report.sensitivity = normalized;
    if (report.calibration) report.calibration.sensitivity = { source, ...(mse ? { mse } : {}), ...(samples ? { samples } : {}) };
  }
  report.alpha = table.alpha;
  for (const e of report.layers) {
    const t = table.layers[e.name];
    if (!t || e.mode === 'skipped') continue;
    e.alpha = t.alpha;
    if (e.activation) {
      e.activation.forEach((a, i) => {
        const b = t.branches[i];
        if (!b || b.role !== a.role) return;
        Object.assign(a, { candidate: b.activation.candidate, candidates: b.activation.candidates, chunkMin: b.activation.chunkMin, chunkMax: b.activation.chunkMax });
      });
    }
    e.weightSearch = t.branches.map((b) => ({
      role: b.role,
      searched: b.weight.searched,
      ...(b.weight.choice ? { choices: countChoices(b.weight.choice) } : {}),
      ...(b.weight.error ? { error: b.weight.error } : {}),
    }));
    if (t.outputError) e.outputError = { chunks: table.chunks, ...t.outputError };
  }
}

const CHOICE_NAMES: Record<string, string> = Object.fromEntries(Object.entries(WEIGHT_CHOICE_CODES).map(([name, code]) => [code, name]));

function countChoices(choice: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of choice) {
    const name = CHOICE_NAMES[c] ?? c;
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}
