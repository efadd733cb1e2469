import { scanRows } from './simd.ts';

/**
 * Running per-channel minimum and maximum of a tensor over every axis but the last (the
 * channel axis of a linear layer's input). Memory is two floats per channel (and a scratch
 * float per row of the largest call), whatever the number of samples.
 */
export class ChannelRangeAccumulator {
  readonly min: Float32Array;
  readonly max: Float32Array;
  samples = 0;
  /** Scratch for the row magnitudes the shared scan also computes (unused here). */
  private rowMax = new Float32Array(0);

  constructor(readonly channels: number) {
    this.min = new Float32Array(channels).fill(Infinity);
    this.max = new Float32Array(channels).fill(-Infinity);
  }

  /** Folds in a tensor whose last axis has `channels` entries. */
  add(data: Float32Array): void {
    const C = this.channels;
    if (data.length % C !== 0) throw new Error(`tensor of ${data.length} values does not have ${C} channels on its last axis`);
    if (this.rowMax.length < data.length / C) this.rowMax = new Float32Array(data.length / C);
    scanRows(data, C, this.min, this.max, this.rowMax);
    this.samples++;
  }
}
