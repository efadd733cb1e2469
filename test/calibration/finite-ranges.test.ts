// The exact per-channel ranges of calibration see every value, so an Inf that the sampled
// overflow check during collection misses still names the layer and the module.
import { describe, expect, it } from 'vitest';
import { checkFiniteRanges } from '../../src/passes/calibration/calibrate.ts';
import type { LoadedCalibration } from '../../src/passes/calibration/module.ts';

const calib = { origin: 'calib.mjs' } as LoadedCalibration;
const ranges = (min: number[], max: number[]) => new Map([['/blocks.0/ffn/ffn.2/MatMul', { min: Float32Array.from(min), max: Float32Array.from(max) }]]);

describe('checkFiniteRanges', () => {
  it('names the layer, the channel and the module for an Inf', () => {
    expect(() => checkFiniteRanges(ranges([0, -1, 0], [1, 1, Infinity]), calib)).toThrow(/calibration module calib\.mjs: the input of layer \/blocks\.0\/ffn\/ffn\.2\/MatMul reached \[0, Infinity\] in channel 2: not finite/);
    expect(() => checkFiniteRanges(ranges([-Infinity], [1]), calib)).toThrow(/channel 0/);
  });

  it('accepts finite ranges, and channels that saw no row', () => {
    expect(() => checkFiniteRanges(ranges([0, Infinity], [1, -Infinity]), calib)).not.toThrow();
  });
});
