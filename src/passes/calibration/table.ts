/**
 * The calibration table: everything calibration decided, as JSON, so that a build can
 * calibrate once and quantize many times (`load-calibration` needs neither the calibration
 * module nor onnxruntime), and a reviewer can read why each scale was chosen.
 *
 * Per layer and branch it holds the chosen activation quantizer (type, scale, zero point,
 * clip), every candidate with its weighted output error, the branch's exact min/max per
 * chunk, and the weight scale choice per output channel as one code letter per column
 * (`m` min/max, `3` p0.999, `4` p0.9999, `5` p0.99999 — the scales are recomputed from the
 * model's weights, which keeps the file small and tied to the weights it was made for).
 * Around that: the chunk sensitivity curve (S1), the α used, and the options that the scales
 * depend on; loading with other bit widths or S2 options is refused.
 */
import { readFileSync } from 'node:fs';
import type { ScaleCandidate } from '../../kernels/scale-search.ts';
import { bitsLabel, keepsFloatInputs, type QuantConfig, takesOwnBits } from '../quant/config.ts';
import { takeRows, weightMatrix } from '../quant/layer-weights.ts';
import type { LinearLayer } from '../quant/linear-layers.ts';
import { planLayer, type ActivationQuant, type LayerPlan, type LayerScales } from '../quant/plan.ts';
import type { CalibratedScales } from '../quant/quantize-layers.ts';
import { type ActivationCandidate, type LayerSearch, weightParamsFromChoice } from './search.ts';
import type { SensitivityCurve } from './sensitivity.ts';
import type { Smoothing } from '../quant/smooth.ts';
import type { SplitFold } from '../quant/fold-split.ts';
import type { SplitCheck } from '../quant/split-check.ts';

export const TABLE_FORMAT = 'qarvd-calibration';
export const TABLE_VERSION = 4;
/**
 * Versions this build reads. Version 2 added `config.w8Layers` (scope outer-w8); a version-1
 * table has every layer at its `bits`, which the per-layer check reads as such. Version 3
 * added `config.sequential`; earlier tables do not say whether they were. Version 4 added
 * `splitCheck` (an earlier build would make the split model from a table whose check undid the
 * splits); earlier tables hold no verdict, and auto's splits stay unchecked. Builds before a
 * version refuse its tables rather than misread them.
 */
const READABLE_VERSIONS: readonly number[] = [1, 2, 3, 4];

/** The options the scales depend on (a table made under other values does not apply). */
export interface TableConfig {
  bits: string;
  wSymmetric: boolean;
  aSymmetric: boolean;
  dualScale: boolean;
  tau: number;
  gamma: number;
  align: number;
  /** Input channels per weight block (0: per output channel). */
  blockSize?: number;
  /** Layers with 8-bit weights under lower `bits` (`scope outer-w8`), or float inputs (`outer-activations float`), in layer order; absent: none. */
  w8Layers?: string[];
  /** `float`: the `w8Layers` keep float inputs (outer-activations float); absent: quantized. */
  outerActivations?: 'float';
  /**
   * Present: the reconstruction statistics beside the table were collected stage by stage on
   * the partly quantized model (`sequential`), each stage's upstream layers quantized at the
   * table's bits and reconstructed as recorded here; they fit no other bits, weight-only
   * included, and no other reconstruction. Absent: collected on the float model (version 3
   * on; an older table does not say).
   */
  sequential?: SequentialRecord;
}

/** How a sequential table's upstream layers were reconstructed while its statistics were collected. */
export interface SequentialRecord {
  reconstruct: string;
  biasCorrection: boolean;
}

/** One branch of a layer in the table. */
export interface TableBranch {
  role: 'all' | 'outlier' | 'normal';
  channels: number;
  activation: {
    type: ActivationQuant['type'];
    scale: number;
    zeroPoint: number;
    clip?: [number, number];
    /** The range the chosen quantizer covers (clipped for a percentile candidate). */
    range: [number, number];
    candidate: ScaleCandidate;
    candidates: ActivationCandidate[];
    /** Exact min and max of the branch's channels per chunk (aligned with the table's chunks). */
    chunkMin: number[];
    chunkMax: number[];
  };
  weight: {
    /** False: plain min/max scales (search off, or a weight shared by several layers). */
    searched: boolean;
    /** One code per output channel (see the module doc). */
    choice?: string;
    /** Weighted output error (per row, summed over columns): all min/max, and as chosen. */
    error?: { minmax: number; chosen: number };
  };
}

/**
 * Refuses a table whose layers were calibrated in another channel order than this run's:
 * `fold-split` permutes producers' output columns and split layers' rows before calibration,
 * so per-channel choices saved with one set of folds do not fit another.
 */
export function checkTableFolds(table: CalibrationTable, folds: readonly SplitFold[], dualScale: boolean, origin: string): void {
  const key = (f: readonly SplitFold[]) => JSON.stringify(f.map((x) => [x.consumer, x.producers, x.outliers]));
  if (key(table.folds ?? []) === key(folds)) return;
  // Both sides folded: the difference is not the fold-split option but the model, its weights, or the layers chosen.
  if (folds.length && table.folds?.length) {
    const layersOf = (f: readonly SplitFold[]) => JSON.stringify(f.map((x) => [x.consumer, x.producers]));
    if (layersOf(table.folds) === layersOf(folds)) {
      const i = folds.findIndex((f, j) => f.outliers !== table.folds![j]!.outliers);
      throw new Error(`calibration table ${origin}: its fold-split moved ${table.folds[i]!.outliers} outlier channels of ${folds[i]!.consumer}, this model's weights give ${folds[i]!.outliers}: the table was made on another model (or other weights or S2 options); calibrate this model (save-calibration)`);
    }
    throw new Error(`calibration table ${origin}: its fold-split folded ${table.folds.length} layer pair(s) (first ${table.folds[0]!.consumer}), this run folds ${folds.length} (first ${folds[0]!.consumer}): the table was made on another model or on other layers (include, exclude, scope); calibrate this model with these options (save-calibration)`);
  }
  const what = (f: readonly SplitFold[]) => (f.length ? `fold-split folding ${f.map((x) => `${x.producers.join('+')} → ${x.consumer}`).join(', ')}` : 'no fold-split fold');
  // fold-split folds nothing without dual-scale: the table's folds then need dual-scale back as well.
  const asTable = table.folds?.length ? (dualScale ? 'fold-split true' : 'dual-scale true or auto and fold-split true') : 'fold-split false';
  throw new Error(`calibration table ${origin} was made with ${what(table.folds ?? [])}, this run has ${what(folds)}: its per-channel choices are in another channel order; calibrate again with these options (save-calibration), or quantize with ${asTable} as the table was`);
}

/** One layer in the table. */
export interface TableLayer {
  K: number;
  N: number;
  mode: 'dual' | 'single';
  outliers: number;
  /** `chunk`: the rows were weighted by α; `one`: α = 1 (dual-scale layers under dual-alpha-one). */
  alpha: 'chunk' | 'one';
  branches: TableBranch[];
  /** Per chunk relative output error of the layer over the reservoir rows, before and after the search. */
  outputError?: { before: number[]; after: number[] };
  /** `dual-scale auto`: the search of the same layer unsplit (one branch, α per chunk), which reconstruction may keep instead. */
  unsplit?: TableLayer;
}

/** The whole table. */
export interface CalibrationTable {
  format: typeof TABLE_FORMAT;
  version: number;
  config: TableConfig;
  /** The calibration data: module, kind, samples, rows kept per tensor and chunk, calls per chunk. */
  source: { origin: string; kind: 'feeds' | 'rollout'; samples: number; reservoirRows: number; calls: number[] };
  scaleSearch: boolean;
  chunks: number[];
  sensitivity: SensitivityCurve | null;
  /** α per chunk (aligned with `chunks`). */
  alpha: number[];
  dualAlphaOne: boolean;
  /** smooth-quant's factors per smoothed input (absent without smooth-quant). */
  smoothing?: Smoothing;
  /** fold-split's permutations (absent when none was made): the table's channels are in that order. */
  folds?: SplitFold[];
  /** The id of the `.recon` side file saved with this table (recon-file.ts), when there is one. */
  recon?: string;
  /** `dual-scale auto`'s split check (quant/split-check.ts): a run loading the table keeps the model it kept, without rolling out. */
  splitCheck?: SplitCheck;
  layers: Record<string, TableLayer>;
}

/** What a table records of the run's options: a table is read only by a run with the same. */
export function tableConfig(config: QuantConfig, layers: readonly LinearLayer[]): TableConfig {
  const w8Layers = layers.filter((l) => takesOwnBits(config, l)).map((l) => l.name);
  return {
    bits: bitsLabel(config),
    wSymmetric: config.wSymmetric,
    aSymmetric: config.aSymmetric,
    dualScale: config.dualScale,
    tau: config.tau,
    gamma: config.gamma,
    align: config.align,
    ...(config.blockSize ? { blockSize: config.blockSize } : {}),
    ...(w8Layers.length ? { w8Layers } : {}),
    // Only where a layer keeps float inputs: a run the option does not change reads the same table.
    ...(layers.some((l) => keepsFloatInputs(config, l)) ? { outerActivations: 'float' as const } : {}),
  };
}

/**
 * Refuses a table whose layers had other weight bits than this run gives them (scope
 * outer-w8 marks the layers around the repeated blocks 8-bit): per layer of this run, so that
 * a run on fewer layers (exclude, include) still reads the table.
 */
function checkLayerBits(table: CalibrationTable, layers: readonly LinearLayer[], config: QuantConfig, fail: (what: string) => never): void {
  const eight = new Set(table.config.w8Layers ?? []);
  const differ = layers.filter((l) => eight.has(l.name) !== takesOwnBits(config, l));
  if (!differ.length) return;
  const first = differ[0]!;
  // At w-bits 8 the marked layers differ from the others only in their float inputs (outer-activations float).
  const floatInputs = table.config.outerActivations === 'float' || config.outerActivations === 'float';
  if (config.wBits === 8 && floatInputs) {
    const says = (marked: boolean) => (marked ? 'float inputs' : 'quantized inputs');
    fail(
      `gave ${first.name} ${says(eight.has(first.name))} and this run gives it ${says(!eight.has(first.name))} (${differ.length} layer(s) differ); ` +
        `use the scope and outer-activations the table was made with (scope ${eight.size ? 'outer-w8' : 'all'}, outer-activations ${table.config.outerActivations ?? 'quantized'}) or calibrate again (save-calibration)`,
    );
  }
  const bits = (is8: boolean) => (is8 ? '8-bit' : `${config.wBits}-bit`);
  const tableScope = eight.size ? 'scope outer-w8' : 'every layer at its bits (scope all or blocks, or a table from before scope outer-w8)';
  fail(
    `gave ${first.name} ${bits(eight.has(first.name))} weights and this run gives it ${bits(!eight.has(first.name))} (${differ.length} layer(s) differ; the table was made with ${tableScope}); ` +
      `use the option scope the table was made with (scope ${eight.size ? 'outer-w8' : 'all'}) or calibrate again (save-calibration)`,
  );
}

/**
 * Refuses a sequential table (see {@link TableConfig.sequential}) for a run its statistics do
 * not fit: a weight-only run (their upstream error includes the quantized activations), other
 * bits, or another reconstruction of the upstream layers. Checked for every run that reads the
 * table's statistics; weight-only runs read no scales and so pass no other check of the bits.
 * @param warn told when a weight-only run reads a table too old to say how it was collected
 */
export function checkSequentialTable(table: CalibrationTable, config: QuantConfig, reconstruct: SequentialRecord, origin: string, warn: (line: string) => void): void {
  const seq = table.config.sequential;
  if (!seq) {
    if (table.version < 3 && config.aBits === null) {
      warn(`calibration table ${origin} (version ${table.version}) does not say whether its statistics were collected sequentially (tables say so from version 3); if it was made with sequential true, they hold ${table.config.bits}'s upstream error, not this weight-only run's`);
    }
    return;
  }
  const fail = (what: string): never => {
    throw new Error(`calibration table ${origin}: ${what}`);
  };
  const bits = bitsLabel(config);
  if (config.aBits === null) {
    fail(`was calibrated sequentially at ${table.config.bits}: its reconstruction statistics hold the upstream error of that model's quantized activations, which this weight-only run (${bits}) does not have; give this run its calibration data (calib or prompts) instead of load-calibration, or load a table made without sequential`);
  }
  if (table.config.bits !== bits) {
    fail(`was calibrated sequentially at ${table.config.bits}: its reconstruction statistics were collected on the model quantized at those bits and do not fit ${bits}; calibrate again at ${bits} (save-calibration)`);
  }
  if (seq.reconstruct !== reconstruct.reconstruct || seq.biasCorrection !== reconstruct.biasCorrection) {
    fail(
      `was calibrated sequentially with reconstruct ${seq.reconstruct} and bias-correction ${seq.biasCorrection}: each stage's statistics hold the upstream layers as those made them; this run has reconstruct ${reconstruct.reconstruct} and bias-correction ${reconstruct.biasCorrection}; use the table's, or calibrate again (save-calibration)`,
    );
  }
}

/**
 * Refuses a table made with `dual-scale true` for a `dual-scale auto` run that reconstructs:
 * auto compares each split layer with its unsplit form, whose scales only an auto table holds
 * (the `unsplit` entry); without them the unsplit form would have no activation quantizer.
 */
export function checkTableSplitAuto(table: CalibrationTable, layers: readonly LinearLayer[], origin: string): void {
  const first = layers.find((l) => table.layers[l.name]?.mode === 'dual' && !table.layers[l.name]!.unsplit);
  if (!first) return;
  throw new Error(
    `calibration table ${origin} has no unsplit search of split layers (first: ${first.name}), which dual-scale auto compares the split with: it was made with dual-scale true, or with auto and neither reconstruction nor bias correction; load it with dual-scale true, or calibrate again with dual-scale auto and reconstruction (save-calibration)`,
  );
}

/** The table entry of a searched layer. */
export function tableLayer(layer: LinearLayer, mode: 'dual' | 'single', outliers: number, search: LayerSearch, alpha: 'chunk' | 'one'): TableLayer {
  return {
    K: layer.K,
    N: layer.N,
    mode,
    outliers,
    alpha,
    branches: search.branches.map((b) => ({
      role: b.role,
      channels: b.channels,
      activation: {
        type: b.act.type,
        scale: b.act.scale,
        zeroPoint: b.act.zeroPoint,
        ...(b.act.clip ? { clip: b.act.clip } : {}),
        range: b.act.range,
        candidate: b.actCandidate,
        candidates: b.actCandidates,
        chunkMin: b.chunkMin,
        chunkMax: b.chunkMax,
      },
      weight: b.weight ? { searched: true, choice: b.weight.choice, error: b.weight.error } : { searched: false },
    })),
    outputError: search.outputError,
  };
}

/** Reads and checks a table file (its shape; {@link scalesFromTable} checks it against the model). */
export function readCalibrationTable(path: string): CalibrationTable {
  const fail = (what: string): never => {
    throw new Error(`calibration table ${path}: ${what}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    return fail(`cannot be read as JSON (${(e as Error).message})`);
  }
  const t = json as Partial<CalibrationTable>;
  if (!t || typeof t !== 'object' || t.format !== TABLE_FORMAT) fail(`is not a calibration table (no "format": "${TABLE_FORMAT}")`);
  if (!READABLE_VERSIONS.includes(t.version as number)) fail(`has version ${String(t.version)}; this build reads versions ${READABLE_VERSIONS.join(' and ')}`);
  if (!t.config || !t.layers || typeof t.layers !== 'object' || !Array.isArray(t.chunks) || !Array.isArray(t.alpha)) fail('is missing config, chunks, alpha or layers');
  const check = t.splitCheck as Record<string, unknown> | undefined;
  if (check !== undefined && (typeof check !== 'object' || check === null || (check.kept !== 'auto' && check.kept !== 'off') || typeof check.run !== 'string')) {
    fail('has a "splitCheck" this build cannot read (it needs "kept": "auto" or "off" and the "run" it was measured for); remove it to quantize with dual-scale auto\'s splits unchecked');
  }
  // JSON has no Infinity: a failed candidate's error was written as null.
  if (check?.mse && typeof check.mse === 'object') for (const k of ['auto', 'off'] as const) if ((check.mse as Record<string, unknown>)[k] === null) (check.mse as Record<string, number>)[k] = Infinity;
  return t as CalibrationTable;
}

/**
 * The scales of a table for the layers of a model: checks that the table was made under the
 * same options and for the same layers (names, shapes, S2 split), and recomputes each
 * branch's weight scales from its per-column choice.
 */
export function scalesFromTable(table: CalibrationTable, layers: LinearLayer[], config: QuantConfig, origin: string): CalibratedScales {
  const fail = (what: string): never => {
    throw new Error(`calibration table ${origin}: ${what}`);
  };
  const want = tableConfig(config, layers);
  // Both sides' keys: an option one side records and the other leaves at its default differs
  // too. The 8-bit layers are compared per layer below; how the statistics were collected
  // (sequential) does not change the scales, and checkSequentialTable checks its bits.
  const keys = [...new Set([...Object.keys(want), ...Object.keys(table.config)])].filter((k) => k !== 'w8Layers' && k !== 'sequential') as (keyof TableConfig)[];
  const diffs = keys.filter((k) => String(table.config[k]) !== String(want[k]));
  if (diffs.length) {
    // A table records outerActivations only where it is float (tableConfig).
    const value = (k: keyof TableConfig, v: unknown) => (v === undefined ? (k === 'outerActivations' ? 'quantized' : '(not set)') : String(v));
    // q-arvd's default became float on 2026-12-06: a table saved with the earlier default reads with the option given.
    const earlier = diffs.includes('outerActivations') && table.config.outerActivations === undefined ? '; a table saved by q-arvd before 2026-12-06 with the default has quantized outer inputs: give outer-activations quantized to read it' : '';
    fail(`was made with ${diffs.map((k) => `${k} ${value(k, table.config[k])}`).join(', ')}, this run has ${diffs.map((k) => `${k} ${value(k, want[k])}`).join(', ')}; calibrate again with these options (save-calibration) or use the table's${earlier}`);
  }
  checkLayerBits(table, layers, config, fail);
  const out: CalibratedScales = new Map();
  for (const layer of layers) {
    // Float inputs (outer-activations float): no searched scales, as in a weight-only run.
    if (keepsFloatInputs(config, layer)) continue;
    const entry = table.layers[layer.name];
    if (!entry) fail(`has no entry for layer ${layer.name} (it covers ${Object.keys(table.layers).length} layers); calibrate this model again`);
    if (entry!.K !== layer.K || entry!.N !== layer.N) fail(`layer ${layer.name} is ${entry!.K}×${entry!.N} in the table but ${layer.K}×${layer.N} in the model`);
    const w = weightMatrix(layer);
    const scales: LayerScales = {};
    readBranches(planLayer(layer, config), entry!, w, layer, config, scales, fail);
    if (entry!.unsplit) readBranches(planLayer(layer, { ...config, dualScale: false }), entry!.unsplit, w, layer, config, scales, fail);
    out.set(layer.name, scales);
  }
  return out;
}

/** Reads the scales of a table entry's branches into `scales`, checking them against the plan's. */
function readBranches(plan: LayerPlan, entry: TableLayer, w: Float32Array, layer: LinearLayer, config: QuantConfig, scales: LayerScales, fail: (what: string) => never): void {
  const roles = plan.branches.map((b) => `${b.role}:${b.K}`).join(',');
  const tableRoles = entry.branches.map((b) => `${b.role}:${b.channels}`).join(',');
  if (roles !== tableRoles) fail(`layer ${layer.name} has branches ${tableRoles} in the table but ${roles} here (different weights?)`);
  plan.branches.forEach((br, i) => {
    const tb = entry.branches[i]!;
    const a = tb.activation;
    if (!a || typeof a.scale !== 'number' || typeof a.zeroPoint !== 'number') fail(`layer ${layer.name}, branch ${br.role}: no activation scale`);
    const act: ActivationQuant = { type: a.type, scale: a.scale, zeroPoint: a.zeroPoint, range: a.range, ...(a.clip ? { clip: a.clip } : {}) };
    scales[br.role] = { act };
    if (tb.weight?.searched && tb.weight.choice) {
      const wb = br.indices ? takeRows(w, layer.N, br.indices) : w;
      try {
        scales[br.role]!.weight = weightParamsFromChoice(wb, br.K, layer.N, br.wType, config.wSymmetric, tb.weight.choice);
      } catch (e) {
        fail(`layer ${layer.name}, branch ${br.role}: ${(e as Error).message}`);
      }
    }
  });
}
