import type { PassOption } from '../pass.ts';
import { DEFAULT_MIN_K } from './linear-layers.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from './config.ts';
import { DEFAULT_SMOOTH_ALPHA } from './smooth.ts';
import { DEFAULT_GPTQ_DAMP } from '../../kernels/gptq.ts';
import { DAMP_CANDIDATES } from './reconstruct.ts';
import { DEFAULT_ADAROUND_ITERATIONS } from '../../kernels/adaround.ts';
import { checkOptionRanges } from './option-ranges.ts';
import { DEFAULT_CALIB_TIMEOUT_S } from '../calibration/supervise.ts';
import { DEFAULT_STATISTICS_MEMORY_TEXT, parseBytes } from '../calibration/grouped.ts';

/** Options shared by `q-arvd` and `minmax` (declared once so the two stay comparable). */
export const SHARED_QUANT_OPTIONS = {
  'w-bits': { type: 'enum', choices: ['8', '4'], default: '8', help: 'weight bits (int8 or int4, per output channel)' },
  'a-bits': { type: 'enum', choices: ['8', '6', 'none'], default: '8', help: 'activation bits (static per tensor); none = weight-only' },
  format: { type: 'enum', choices: ['qdq', 'qoperator'], default: 'qdq', help: 'qdq: Q/DQ around float MatMuls (portable; onnxruntime fuses them into integer kernels); qoperator: onnxruntime\'s com.microsoft.MatMulIntegerToFloat, or MatMulNBits for weight-only (docs/speed.md)' },
  include: { type: 'string[]', default: [], help: 'only layers whose node name matches one of these globs' },
  exclude: { type: 'string[]', default: [], help: 'skip layers whose node name matches one of these globs' },
  'min-k': { type: 'integer', default: DEFAULT_MIN_K, help: 'skip layers with fewer input channels' },
  'w-symmetric': { type: 'boolean', default: false, help: 'symmetric weights (zero point 0) instead of per-channel asymmetric' },
  'reduce-range': {
    type: 'boolean',
    default: false,
    help: '8-bit weights on a 7-bit grid ([-64, 63] in int8): for CPUs with AVX2 but without VNNI, whose u8×s8 integer kernels saturate on full-range int8 weights (see docs/speed.md)',
  },
  'integer-kernels': {
    type: 'enum',
    choices: ['auto', 'always', 'never'],
    default: 'auto',
    help: 'auto: layers too small for onnxruntime\'s integer kernels to pay (a measured rule by K, N and form: docs/speed.md "Small layers") are kept fp32 — their quantized weights stored as usual, dequantized once when onnxruntime loads the model, one float MatMul — and the report says so; always: every layer in its integer form; never: every layer so (quantized storage, float compute; block-size channel only)',
  },
  'w8-kernel': {
    type: 'enum',
    choices: ['nbits', 'dynamic'],
    default: 'nbits',
    help: '8-bit weight-only layers (a-bits none, w-bits 8): nbits runs them in MatMulNBits (activation quantized to int8 per block of 256 at run time); dynamic in DynamicQuantizeMatMul, as onnxruntime\'s quantize_dynamic (activation quantized to uint8 per tensor at run time: 0.92–1.21× the time of quantize_dynamic, 1.6–2.25× faster than nbits from 16 rows on, about twice the error of one call, 1.6–14× the final-video error on four ARVDs): docs/w8-weight-only.md',
  },
  'w4a8-kernel': {
    type: 'enum',
    choices: ['integer', 'nbits'],
    default: 'integer',
    help: 'W4A8 and W4A6 with format qoperator: integer runs them in MatMulIntegerToFloat on the 4-bit values widened to int8 (exact; faster from 16 rows; see int4-storage); nbits in MatMulNBits (int4) behind the static QuantizeLinear → DequantizeLinear, which requantizes the activation per block at run time (2.4× faster at 1 row, 1.5–1.9× slower from 16): docs/w8-weight-only.md',
  },
  'int4-storage': {
    type: 'boolean',
    default: true,
    help: 'W4A8 and W4A6 in MatMulIntegerToFloat (both formats): store the 4-bit weights as int4 behind a Cast to int8, which onnxruntime folds when it loads the model (half the weight bytes in the file, the same kernels and results; needs opset 21 and onnxruntime 1.23 or later); false: store them as int8',
  },
  'a-symmetric': { type: 'boolean', default: false, help: 'symmetric int8 activations instead of asymmetric uint8' },
  'qdq-domain': { type: 'enum', choices: ['ai.onnx', 'com.microsoft'], default: 'ai.onnx', help: 'domain of Q/DQ nodes; com.microsoft works at any opset without raising it' },
  'block-size': {
    type: 'enum',
    choices: ['channel', '16', '32', '64', '128', '256'],
    default: 'channel',
    help: 'weight scales per output channel, or per block of this many input channels and output channel (blocked DequantizeLinear at opset 21; MatMulNBits with qoperator weight-only); a split layer\'s outlier rows form their own blocks; weight-only (a-bits none) only: onnxruntime fuses blocked weights with quantized activations into MatMulIntegerToFloat, which fails at run time',
  },
  calib: { type: 'string', default: '', help: 'calibration module (exports feeds(ctx) or rollout(run, ctx)); needed unless a-bits is none', file: { access: 'read' } },
  prompts: { type: 'string', default: '', help: 'text models: a prompt list (one a line) tokenized with the tokenizer beside the model (or in its parent folder), instead of calib', file: { access: 'read' } },
  'smooth-quant': { type: 'boolean', default: false, help: 'SmoothQuant before quantizing: divide each layer input channel by s = max|X|^α / max|W|^(1−α) (from a min/max pass over the calibration samples) and multiply the weight rows by s; narrows per-tensor activation ranges' },
  'smooth-alpha': { type: 'number', default: DEFAULT_SMOOTH_ALPHA, help: 'smooth-quant migration strength α in (0, 1): larger moves more of the activation range into the weights' },
  'calib-timeout': { type: 'number', default: DEFAULT_CALIB_TIMEOUT_S, help: 'seconds one calibration sample (a rollout, or a feeds() sample) may take before the conversion stops naming it; raise it for slow rollouts' },
  'calib-threads': { type: 'integer', default: 0, help: 'onnxruntime intra-op threads during calibration (0: its default; 1 is often fastest for small models)' },
  'save-statistics': { type: 'string', default: '', help: 'write what calibration collected from the module (ranges, rows, Gram matrices) to this binary file, so that runs at other bit-widths on the same model and module skip the collection (load-statistics)', file: { access: 'write' } },
  'load-statistics': { type: 'string', default: '', help: 'use a file written by save-statistics instead of collecting again (the same model, layers, module and sample count; checked); the result is the same as collecting', file: { access: 'read' } },
  report: { type: 'string', default: '', help: 'write the per-layer JSON report to this path', file: { access: 'write' } },
  threads: { type: 'integer', default: 0, help: 'threads quantizing the weights (0: one per core; 1: no worker threads); the output is the same for any number' },
} as const satisfies Record<string, PassOption>;

/**
 * Which layers are quantized, and at what weight bits: `minmax` declares `all` (the paper's
 * MinMax baseline: every layer alike) with the outer layers' inputs `quantized`, `q-arvd`
 * `outer-w8` with them `float` (docs/error-propagation.md: the rule fixed before the fourth
 * ARVD, tiny-wan, was measured).
 */
export function scopeOption(defaultScope: 'all' | 'outer-w8', defaultOuterActivations: 'quantized' | 'float') {
  return {
    scope: {
      type: 'enum',
      choices: ['all', 'blocks', 'outer-w8'],
      default: defaultScope,
      help: "which layers, at what weight bits: all: every linear layer at w-bits; blocks: only the layers inside the model's repeated blocks (found from node names like /blocks.N/…, /model/layers.N/…, or the module scopes torch.onnx's dynamo exporter records on each node), keeping the layers around them (embeddings, time and text projections, the head) float, as the Q-ARVD paper quantizes the 10 linears of each block and GPTQ tools keep lm_head; outer-w8: every layer, those around the blocks with 8-bit weights (the same at w-bits 8), as low-bit quantization keeps the first and last layers at 8 bits; when no blocks are found, every layer at w-bits (docs/error-propagation.md)",
    },
    'outer-activations': {
      type: 'enum',
      choices: ['quantized', 'float'],
      default: defaultOuterActivations,
      help: "scope outer-w8 with quantized activations (a-bits 8 or 6): quantized: the layers around the blocks quantize their inputs like the rest; float: they keep float inputs (8-bit weight-only layers), where most of a W8A8 model's per-call error was measured on the tiny ARVDs; q-arvd's default (on four trained ARVDs its final video was never significantly worse than quantized inputs, docs/error-propagation.md), minmax's is quantized",
    },
  } as const satisfies Record<string, PassOption>;
}

/** Bias correction: on by default in `q-arvd`; `minmax` declares it off (the paper's baseline), see {@link biasCorrectionOption}. */
export function biasCorrectionOption(enabled: boolean) {
  return {
    'bias-correction': {
      type: 'boolean',
      default: enabled,
      help: 'fold the mean output change of the quantized weights over the calibration rows, −μ·(Ŵ − W), into the bias (adds a bias where there is none); needs calibration data',
    },
  } as const satisfies Record<string, PassOption>;
}

/** Reconstruction (`q-arvd` only): what the frame-weighted objective drives. */
export const RECONSTRUCTION_OPTIONS = {
  reconstruct: {
    type: 'enum',
    choices: ['gptq', 'adaround', 'none'],
    default: 'gptq',
    help: 'weight reconstruction from the α-weighted Gram matrix of calibration rows: gptq (error feedback, Frantar et al. 2022), adaround (learnt up/down rounding, Nagel et al. 2020; slower) or none (round to nearest); used whenever calibration data is given (also weight-only)',
  },
  'gram-stride': {
    type: 'integer',
    default: 1,
    help: 'build the Gram matrices from one calibration call in this many per chunk (row means still from every call): each call\'s XᵀX costs K² multiply-adds per row, more than the layer itself when K > N',
  },
  damp: {
    type: 'string',
    default: 'auto',
    help: `GPTQ damping: add this fraction of the mean diagonal of H to its diagonal; auto chooses per layer among ${DAMP_CANDIDATES.join(', ')} and round to nearest by two-fold cross-validation over the calibration samples (even/odd), the held-out error also deciding dual-scale auto (one sample: ${DEFAULT_GPTQ_DAMP}); a number where H cannot be factored with it (a singular H: fewer rows than channels, or damp 0 on float32 sums) is raised there to the next decade from 1e-6 that can, with a warning`,
  },
  sequential: {
    type: 'boolean',
    default: false,
    help: 'collect each block\'s calibration statistics on a copy whose earlier blocks (the repeated blocks of scope blocks: /blocks.N/, /model/layers.N/, … in the node names) are already quantized, so each layer is fitted to the upstream error it will see; one more calibration pass per block',
  },
  'statistics-memory': {
    type: 'string',
    default: DEFAULT_STATISTICS_MEMORY_TEXT,
    help: 'bytes the reconstruction statistics may take (4GiB, 512MiB, a number): over it the layers are calibrated in consecutive groups that fit, one more run of the calibration samples per group, each group reconstructed and released before the next; the groups after the first sum α-weighted statistics (24·K² bytes per input whatever the chunk count), the same up to float64 summation order (docs/calibration-memory.md)',
  },
  'act-order': { type: 'boolean', default: true, help: 'GPTQ: quantize input channels in descending order of their H diagonal' },
  'activation-objective': {
    type: 'enum',
    choices: ['fp32', 'quantized', 'asymmetric'],
    default: 'fp32',
    help: 'with quantized activations, what the weights are fitted to: fp32 tr(ΔᵀHΔ) of the float inputs; quantized tr(ΔᵀH̃Δ) of the quantized inputs Q(x); asymmetric ‖Q(X)Ŵ − XW‖² (GPTQ of W* = H̃⁻¹CW on H̃). H̃ and C are H corrected by the activation error moments of the scale search\'s rows; damp auto and dual-scale auto score the same objective (docs/activation-objective.md); weight-only runs ignore it',
  },
  iterations: { type: 'integer', default: DEFAULT_ADAROUND_ITERATIONS, help: 'AdaRound: Adam steps per layer; each costs K²·N multiply-adds (K input, N output channels)' },
  ...biasCorrectionOption(true),
} as const satisfies Record<string, PassOption>;

/** The calibration options of `q-arvd`: the error-based scale search, S1 frame weighting, the calibration table. */
export const CALIBRATION_OPTIONS = {
  'scale-search': { type: 'boolean', default: true, help: 'choose weight and activation scales among min/max and the 0.999/0.9999/0.99999 percentiles by the α-weighted layer output error on calibration rows (false: plain min/max, as minmax)' },
  'frame-weighting': { type: 'boolean', default: true, help: 'S1: weight calibration rows by the chunk sensitivity α (measured when calib is a rollout module, or read from sensitivity)' },
  sensitivity: { type: 'string', default: '', help: 'reuse a chunk sensitivity curve (JSON: an array, or a saved calibration table or report) instead of measuring it', file: { access: 'read' } },
  'sensitivity-samples': { type: 'integer', default: 0, help: 'S1 rollouts to average (the first n samples; 0: all); split-check rolls out the same samples and needs at least 6' },
  'dual-alpha-one': { type: 'boolean', default: true, help: 'use α = 1 on dual-scale layers, as the reference code does (false: the per-chunk α there too)' },
  'reservoir-rows': { type: 'integer', default: 256, help: 'activation rows kept per layer input and chunk for the scale search (memory bound)' },
  'save-calibration': { type: 'string', default: '', help: 'write the calibration table (sensitivity, α, every chosen scale and its candidates) to this JSON file', file: { access: 'write', sidecars: ['.recon'], rewrites: 'load-calibration' } },
  'save-sensitivity': { type: 'string', default: '', help: 'write the S1 curve to this JSON file as soon as it is measured, before the rest of the run (what sensitivity reads in another run)', file: { access: 'write' } },
  'load-calibration': { type: 'string', default: '', help: 'quantize with a saved calibration table: no calibration module, no onnxruntime', file: { access: 'read', sidecars: ['.recon'] } },
} as const satisfies Record<string, PassOption>;

/** The options only on `q-arvd`: S2, and calibration's search and S1. */
export const S2_OPTIONS = {
  'dual-scale': {
    type: 'enum',
    choices: ['auto', 'true', 'false'],
    default: 'auto',
    help: 'S2 split of layers with outlier input channels: true splits every such layer (the paper\'s rule), auto only where the split lowers the layer\'s α-weighted output error after reconstruction (the rule alone without calibration data), false never',
  },
  'split-check': {
    type: 'enum',
    choices: ['rollout', 'none'],
    default: 'rollout',
    help: 'dual-scale auto with a rollout module: roll the calibration samples (the first sensitivity-samples, at least 6) out with the model quantized with auto\'s splits and without them, and undo the splits only where the samples show their final results farther from fp32\'s beyond their spread (Wilcoxon signed-rank test of the per-sample error ratios, two-sided p < 0.05, and the lower mean without them; a layer\'s lower error can still make the video worse: docs/split-check.md); none trusts the layers\' errors',
  },
  'fold-split': {
    type: 'boolean',
    default: true,
    help: 'where a split layer\'s input comes from linear layers through elementwise ops only (an FFN: up → Gelu → down), permute their output columns and its weight rows so its outlier channels are the last ones (the same function): the outlier branch then reads them with a Slice instead of a Gather (docs/dual-scale-speed.md)',
  },
  tau: { type: 'number', default: DEFAULT_QUANT_CONFIG.tau, help: 'modified z-score threshold for outlier channels' },
  gamma: { type: 'number', default: DEFAULT_QUANT_CONFIG.gamma, help: 'an outlier norm must also exceed gamma × median' },
  align: { type: 'integer', default: DEFAULT_QUANT_CONFIG.align, help: 'round the outlier count up to a multiple of this (1 disables)' },
  ...CALIBRATION_OPTIONS,
  ...RECONSTRUCTION_OPTIONS,
} as const satisfies Record<string, PassOption>;

/** Resolved shared options (camelCase), as the pass manager hands them over. */
export interface SharedQuantValues {
  wBits: string;
  aBits: string;
  format: string;
  include: string[];
  exclude: string[];
  /** `all` or `blocks` (linear-layers.ts LayerScope); absent means all. */
  scope?: string;
  /** `quantized` or `float` (scope outer-w8's layers with quantized activations); absent means quantized. */
  outerActivations?: string;
  minK: number;
  wSymmetric: boolean;
  aSymmetric: boolean;
  reduceRange?: boolean;
  /** `auto` (the small-layer rule), `always` or `never`; absent means auto. */
  integerKernels?: string;
  /** `nbits` or `dynamic`; absent means nbits. */
  w8Kernel?: string;
  /** `integer` or `nbits`; absent means integer. */
  w4a8Kernel?: string;
  /** Absent means true. */
  int4Storage?: boolean;
  qdqDomain: string;
  /** `channel` or a block size (`'32'`); absent means per channel. */
  blockSize?: string;
  calib: string;
  /** A prompt list for the built-in text calibration source (src/hf/text-calibration.ts). */
  prompts?: string;
  report: string;
  calibThreads?: number;
  saveStatistics?: string;
  loadStatistics?: string;
  /** Threads quantizing the weights (0: one per core). */
  threads?: number;
  smoothQuant?: boolean;
  smoothAlpha?: number;
  /** S2: `true`/`'true'` the paper's rule, `'auto'` checked by data, false/`'false'` never. */
  dualScale?: boolean | 'auto' | 'true' | 'false';
  /** `dual-scale auto`'s whole-model check: `rollout` or `none`; absent (minmax) means none. */
  splitCheck?: string;
  /** S2: move split layers' outlier channels last through their producers (fold-split.ts); absent (minmax) means off. */
  foldSplit?: boolean;
  /** Reconstruction (q-arvd; minmax never reconstructs). */
  reconstruct?: 'gptq' | 'adaround' | 'none';
  /** `auto` or a damping fraction, as text. */
  damp?: string;
  /** AdaRound's Adam steps per layer. */
  iterations?: number;
  gramStride?: number;
  /** A byte count as text (`4GiB`). */
  statisticsMemory?: string;
  sequential?: boolean;
  actOrder?: boolean;
  /** `fp32`, `quantized` or `asymmetric` (kernels/activation-objective.ts); absent means fp32. */
  activationObjective?: string;
  biasCorrection?: boolean;
  tau?: number;
  gamma?: number;
  align?: number;
  /** Seconds one calibration sample may take (both passes). */
  calibTimeout?: number;
  /** Calibration options (q-arvd only; absent for minmax, which then calibrates plain min/max). */
  scaleSearch?: boolean;
  frameWeighting?: boolean;
  sensitivity?: string;
  sensitivitySamples?: number;
  dualAlphaOne?: boolean;
  reservoirRows?: number;
  saveCalibration?: string;
  saveSensitivity?: string;
  loadCalibration?: string;
}

/** True when S2 splits are to be checked against the unsplit layer by calibration data (`dual-scale auto`). */
export function splitAuto(o: SharedQuantValues): boolean {
  return o.dualScale === 'auto';
}

/** Turns resolved pass options into a {@link QuantConfig}. */
export function toQuantConfig(o: SharedQuantValues): QuantConfig {
  if (o.tau !== undefined && !(o.tau > 0)) throw new Error(`option tau must be positive, got ${o.tau}`);
  if (o.gamma !== undefined && !(o.gamma >= 1)) throw new Error(`option gamma must be at least 1, got ${o.gamma}`);
  if (o.align !== undefined && !(o.align >= 1)) throw new Error(`option align must be at least 1, got ${o.align}`);
  const blockSize = o.blockSize === undefined || o.blockSize === 'channel' ? 0 : Number(o.blockSize);
  if (blockSize > 0 && o.w4a8Kernel === 'nbits' && o.format === 'qoperator' && o.wBits === '4' && o.aBits !== 'none') {
    throw new Error(`option block-size ${blockSize}: not supported with w4a8-kernel nbits (nor any form with quantized activations); use a-bits none (blocked weights in MatMulNBits), or block-size channel`);
  }
  if (blockSize > 0 && o.format === 'qoperator' && o.aBits !== 'none') {
    throw new Error(`option block-size ${blockSize}: com.microsoft.MatMulIntegerToFloat takes per-output-channel weight scales only; use a-bits none (MatMulNBits), or block-size channel`);
  }
  // onnxruntime (1.30, CPU) fuses the activation's Q/DQ and a blocked weight DequantizeLinear
  // into MatMulIntegerToFloat as well, which then fails at run time ("Per-column quantization
  // parameter of batched matrix should have same dimension as the matrix").
  if (blockSize > 0 && o.format !== 'qoperator' && o.aBits !== 'none') {
    throw new Error(`option block-size ${blockSize}: with quantized activations (a-bits ${o.aBits}) onnxruntime fuses the blocked weights into MatMulIntegerToFloat, which takes per-output-channel scales only and fails at run time; use a-bits none (blocked weights, which onnxruntime fuses into MatMulNBits), or block-size channel`);
  }
  if (blockSize > 0 && o.qdqDomain === 'com.microsoft' && o.format !== 'qoperator') {
    throw new Error(`option block-size ${blockSize}: blocked weights need the default-domain DequantizeLinear of opset 21 (block_size), not qdq-domain com.microsoft`);
  }
  // At w-bits 4, scope outer-w8's 8-bit layers take the 8-bit weight-only kernel too.
  if (blockSize > 0 && o.w8Kernel === 'dynamic' && o.aBits === 'none' && (o.wBits !== '4' || o.scope === 'outer-w8')) {
    const outer = o.wBits === '4' ? ' (at w-bits 4 for scope outer-w8\'s 8-bit layers)' : '';
    throw new Error(`option block-size ${blockSize}: w8-kernel dynamic (DynamicQuantizeMatMul / MatMulInteger) takes per-output-channel weight scales only${outer}; use block-size channel or w8-kernel nbits${outer ? ', or scope all' : ''}`);
  }
  if (o.w4a8Kernel === 'nbits' && o.format !== 'qoperator' && o.wBits === '4' && o.aBits !== 'none') {
    throw new Error(`option w4a8-kernel nbits: only with format qoperator (onnxruntime fuses no QDQ form of a 4-bit weight with a quantized activation into MatMulNBits); use format qoperator or w4a8-kernel integer`);
  }
  checkOptionRanges(o);
  // Checked on every run, not only those that calibrate: a bad value is a mistake either way.
  if (o.statisticsMemory !== undefined) parseBytes(o.statisticsMemory, 'statistics-memory');
  return {
    ...DEFAULT_QUANT_CONFIG,
    blockSize,
    integerKernels: o.integerKernels === 'always' || o.integerKernels === 'never' ? o.integerKernels : 'auto',
    w8Kernel: o.w8Kernel === 'dynamic' ? 'dynamic' : 'nbits',
    w4a8Kernel: o.w4a8Kernel === 'nbits' ? 'nbits' : 'integer',
    wBits: o.wBits === '4' ? 4 : 8,
    aBits: o.aBits === 'none' ? null : o.aBits === '6' ? 6 : 8,
    format: o.format === 'qoperator' ? 'qoperator' : 'qdq',
    wSymmetric: o.wSymmetric,
    aSymmetric: o.aSymmetric,
    reduceRange: o.reduceRange ?? false,
    int4Storage: o.int4Storage ?? true,
    outerActivations: o.outerActivations === 'float' ? 'float' : 'quantized',
    qdqDomain: o.qdqDomain === 'com.microsoft' ? 'com.microsoft' : '',
    dualScale: o.dualScale !== undefined && o.dualScale !== false && o.dualScale !== 'false',
    tau: o.tau ?? DEFAULT_QUANT_CONFIG.tau,
    gamma: o.gamma ?? DEFAULT_QUANT_CONFIG.gamma,
    align: o.align ?? DEFAULT_QUANT_CONFIG.align,
  };
}
