/**
 * Running per-channel minimum and maximum of a tensor over every axis but the last (the
 * channel axis of a linear layer's input). Memory is two floats per channel, whatever the
 * number of samples.
 */
export class ChannelRangeAccumulator {
  readonly min: Float32Array;
  readonly max: Float32Array;
  samples = 0;

  constructor(readonly channels: number) {
    this.min = new Float32Array(channels).fill(Infinity);
    this.max = new Float32Array(channels).fill(-Infinity);
  }

  /** Folds in a tensor whose last axis has `channels` entries. */
  add(data: Float32Array): void {
    const C = this.channels;
    if (data.length % C !== 0) throw new Error(`tensor of ${data.length} values does not have ${C} channels on its last axis`);
    const { min, max } = this;
    for (let i = 0; i < data.length; i += C) {
      for (let c = 0; c < C; c++) {
        const v = data[i + c]!;
        if (v < min[c]!) min[c] = v;
        if (v > max[c]!) max[c] = v;
      }
    }
    this.samples++;
  }
}
