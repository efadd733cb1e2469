/**
 * Where quantized layers are computed: `auto` applies the measured small-layer rule
 * (small-layers.ts), `always` emits every layer in its integer form, `never` none (every layer
 * in float compute, its weights still stored quantized).
 */
export type IntegerKernels = 'auto' | 'always' | 'never';

/**
 * The kernel 8-bit weight-only layers run in (docs/w8-weight-only.md): `nbits` MatMulNBits
 * (accuracy level 4: the activation quantized to int8 per block of 256 at run time); `dynamic`
 * onnxruntime's DynamicQuantizeMatMul (the activation quantized to uint8 per tensor at run
 * time, u8×s8 GEMM), what its own `quantize_dynamic` emits.
 */
export type W8Kernel = 'nbits' | 'dynamic';

/**
 * The kernel of 4-bit weights with quantized activations (W4A8, W4A6), qoperator only
 * (docs/w8-weight-only.md, part b): `integer` MatMulIntegerToFloat with the 4-bit values in
 * int8 (exact; twice the weight bytes); `nbits` MatMulNBits (int4) behind the static
 * QuantizeLinear → DequantizeLinear, which requantizes the activation per block at run time.
 */
export type W4A8Kernel = 'integer' | 'nbits';

/** How the linear layers are quantized: shared by `q-arvd` and `minmax` so comparisons are like for like. */
export interface QuantConfig {
  /** Weight bits: 8 (int8) or 4 (int4). */
  wBits: 8 | 4;
  /** Activation bits: 8, 6 (a uint8 grid clipped to 64 levels), or null for weight-only. */
  aBits: 8 | 6 | null;
  /** Split layers with outlier input channels into two sub-matmuls (S2). */
  dualScale: boolean;
  tau: number;
  gamma: number;
  align: number;
  /** `qdq` (portable Q/DQ around float ops) or `qoperator` (com.microsoft integer kernels). */
  format: 'qdq' | 'qoperator';
  /** Symmetric weights (zero point 0). Default false: per-channel asymmetric, as the reference code. */
  wSymmetric: boolean;
  /** Symmetric int8 activations instead of asymmetric uint8. */
  aSymmetric: boolean;
  /**
   * 8-bit weights on a 7-bit grid ([−64, 63] in int8), for CPUs without VNNI whose u8×s8
   * kernels saturate on full-range int8 weights (onnxruntime's `reduce_range`).
   */
  reduceRange: boolean;
  /** Domain of emitted Q/DQ nodes: '' (raise the opset when needed) or com.microsoft (any opset). */
  qdqDomain: '' | 'com.microsoft';
  /**
   * Input channels per weight quantization block (one scale and zero point per block of rows
   * and output channel, opset-21 blocked DequantizeLinear / MatMulNBits); 0: per output channel.
   */
  blockSize: number;
  /** Which layers run in integer kernels; the others in float compute (small-layers.ts). */
  integerKernels: IntegerKernels;
  /** The kernel of 8-bit weight-only layers (4-bit and quantized activations ignore it). */
  w8Kernel: W8Kernel;
  /** The kernel of W4A8 / W4A6 layers in the qoperator format. */
  w4a8Kernel: W4A8Kernel;
  /**
   * 4-bit weights of the 8-bit integer kernels (W4A8, W4A6) stored as int4 behind a `Cast` to
   * int8 that onnxruntime folds at load (forms.ts); false: stored as int8.
   */
  int4Storage: boolean;
  /**
   * `float`: the layers `scope outer-w8` marks keep float inputs (8-bit weight-only) when the
   * pass quantizes activations; `quantized`: their activations as the rest's.
   */
  outerActivations: 'quantized' | 'float';
}

/** The defaults of the paper's W8A8 setting. */
export const DEFAULT_QUANT_CONFIG: QuantConfig = {
  wBits: 8,
  aBits: 8,
  dualScale: true,
  tau: 3.5,
  gamma: 1.2,
  align: 32,
  format: 'qdq',
  wSymmetric: false,
  aSymmetric: false,
  reduceRange: false,
  qdqDomain: '',
  blockSize: 0,
  integerKernels: 'auto',
  w8Kernel: 'nbits',
  w4a8Kernel: 'integer',
  int4Storage: true,
  outerActivations: 'quantized',
};

/** `W8A8`, `W4A8`, `W4` (weight-only): the label reports and diffs use. */
export function bitsLabel(c: Pick<QuantConfig, 'wBits' | 'aBits'>): string {
  return `W${c.wBits}${c.aBits === null ? '' : `A${c.aBits}`}`;
}

/**
 * The configuration one layer is quantized with: the pass's, with 8-bit weights for a layer
 * that `scope outer-w8` marks (LinearLayer.wBits), and float inputs for it under
 * `outer-activations float`. Every per-layer decision (plan, scale
 * search, form, small-layer rule, report) reads it, so such a layer is exactly what the pass
 * would make of it at w-bits 8.
 */
export function layerConfig(config: QuantConfig, layer: { wBits?: 8 }): QuantConfig {
  if (!takesOwnBits(config, layer)) return config;
  return { ...config, wBits: layer.wBits!, ...(keepsFloatInputs(config, layer) ? { aBits: null } : {}) };
}

/**
 * True when `layer` is quantized otherwise than the pass's bits say: its weights take 8 bits at
 * w-bits 4 (scope outer-w8), or its inputs stay float (outer-activations float).
 */
export function takesOwnBits(config: QuantConfig, layer: { wBits?: 8 }): boolean {
  return layer.wBits !== undefined && (layer.wBits !== config.wBits || keepsFloatInputs(config, layer));
}

/** True when `layer` keeps float inputs in a run that quantizes activations (`outer-activations float`). */
export function keepsFloatInputs(config: QuantConfig, layer: { wBits?: 8 }): boolean {
  return layer.wBits !== undefined && config.outerActivations === 'float' && config.aBits !== null;
}
