import type { PassOption } from '../pass.ts';
import { DEFAULT_MIN_K } from './linear-layers.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from './config.ts';

/** Options shared by `q-arvd` and `minmax` (declared once so the two stay comparable). */
export const SHARED_QUANT_OPTIONS = {
  'w-bits': { type: 'enum', choices: ['8', '4'], default: '8', help: 'weight bits (int8 or int4, per output channel)' },
  'a-bits': { type: 'enum', choices: ['8', '6', 'none'], default: '8', help: 'activation bits (static per tensor); none = weight-only' },
  format: { type: 'enum', choices: ['qdq', 'qoperator'], default: 'qdq', help: 'qdq: Q/DQ around float MatMuls (portable); qoperator: com.microsoft.MatMulIntegerToFloat' },
  include: { type: 'string[]', default: [], help: 'only layers whose node name matches one of these globs' },
  exclude: { type: 'string[]', default: [], help: 'skip layers whose node name matches one of these globs' },
  'min-k': { type: 'integer', default: DEFAULT_MIN_K, help: 'skip layers with fewer input channels' },
  'w-symmetric': { type: 'boolean', default: false, help: 'symmetric weights (zero point 0) instead of per-channel asymmetric' },
  'a-symmetric': { type: 'boolean', default: false, help: 'symmetric int8 activations instead of asymmetric uint8' },
  'qdq-domain': { type: 'enum', choices: ['ai.onnx', 'com.microsoft'], default: 'ai.onnx', help: 'domain of Q/DQ nodes; com.microsoft works at any opset without raising it' },
  calib: { type: 'string', default: '', help: 'calibration module (exports feeds(ctx) or rollout(run, ctx)); needed unless a-bits is none' },
  report: { type: 'string', default: '', help: 'write the per-layer JSON report to this path' },
} as const satisfies Record<string, PassOption>;

/** The S2 options, only on `q-arvd`. */
export const S2_OPTIONS = {
  'dual-scale': { type: 'boolean', default: true, help: 'split layers with outlier input channels into two sub-matmuls (S2)' },
  tau: { type: 'number', default: 3.5, help: 'modified z-score threshold for outlier channels' },
  gamma: { type: 'number', default: 1.2, help: 'an outlier norm must also exceed gamma × median' },
  align: { type: 'integer', default: 32, help: 'round the outlier count up to a multiple of this (1 disables)' },
} as const satisfies Record<string, PassOption>;

/** Resolved shared options (camelCase), as the pass manager hands them over. */
export interface SharedQuantValues {
  wBits: string;
  aBits: string;
  format: string;
  include: string[];
  exclude: string[];
  minK: number;
  wSymmetric: boolean;
  aSymmetric: boolean;
  qdqDomain: string;
  calib: string;
  report: string;
  dualScale?: boolean;
  tau?: number;
  gamma?: number;
  align?: number;
}

/** Turns resolved pass options into a {@link QuantConfig}. */
export function toQuantConfig(o: SharedQuantValues): QuantConfig {
  if (o.tau !== undefined && !(o.tau > 0)) throw new Error(`option tau must be positive, got ${o.tau}`);
  if (o.gamma !== undefined && !(o.gamma >= 1)) throw new Error(`option gamma must be at least 1, got ${o.gamma}`);
  if (o.align !== undefined && !(o.align >= 1)) throw new Error(`option align must be at least 1, got ${o.align}`);
  return {
    ...DEFAULT_QUANT_CONFIG,
    wBits: o.wBits === '4' ? 4 : 8,
    aBits: o.aBits === 'none' ? null : o.aBits === '6' ? 6 : 8,
    format: o.format === 'qoperator' ? 'qoperator' : 'qdq',
    wSymmetric: o.wSymmetric,
    aSymmetric: o.aSymmetric,
    qdqDomain: o.qdqDomain === 'com.microsoft' ? 'com.microsoft' : '',
    dualScale: o.dualScale ?? false,
    tau: o.tau ?? DEFAULT_QUANT_CONFIG.tau,
    gamma: o.gamma ?? DEFAULT_QUANT_CONFIG.gamma,
    align: o.align ?? DEFAULT_QUANT_CONFIG.align,
  };
}
