// The quantization pass's "weights before → after" (its log line and statistics) and
// `convert diff`'s `weights` count the same bytes (they differed by the Constant node tensors:
// 15,887,040 vs 15,899,104 on tiny-arvd-l, found by a user trial). tiny-arvd, the real model,
// holds Constant tensors too (1,264 bytes), so the old count fails here.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { diffModels, loadModel, quantize } from '../../src/index.ts';
import { REPO_ROOT, removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('weight-bytes');
afterAll(() => removeDir(dir));

describe('weight bytes', () => {
  it("a quantization pass's figures are convert diff's weights.before and weights.after", async () => {
    const input = join(REPO_ROOT, 'examples/tiny-arvd/model.onnx');
    const output = join(dir, 'w8.onnx');
    const result = await quantize(input, output, { pass: 'q-arvd', aBits: 'none' });
    const stats = result.passes[0]!.stats;
    const diff = diffModels(loadModel(input), loadModel(output));
    expect(stats['weightBytesBefore']).toBe(diff.weights.before);
    expect(stats['weightBytesAfter']).toBe(diff.weights.after);
    expect(diff.weights.before).toBe(1186224);
  });
});
