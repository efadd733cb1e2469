import type { QuantConfig } from './config.ts';
import type { SkippedLayer } from './linear-layers.ts';
import type { LayerPlan } from './plan.ts';

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
  /** Per-branch activation quantizers (role, scale, zero point, calibrated range). */
  activation?: { role: string; channels: number; scale: number; zeroPoint: number; range: [number, number] }[];
}

/** The report `--report` writes and the API returns. */
export interface QuantReport {
  method: string;
  bits: string;
  format: string;
  layers: LayerReportEntry[];
  totals: { layers: Record<'dual' | 'single' | 'skipped', number>; bytesBefore: number; bytesAfter: number; ratio: number };
}

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
