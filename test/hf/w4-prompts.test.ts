// stories260K-hf at W4 weight-only with the built-in text calibration (`--q-arvd.prompts`): the
// row issue 14 asks for beside stories260K's feeds-module row (test/calibration/stories260k.test.ts).
// With a prompt list, a weight-only run reconstructs (GPTQ + bias correction); without one it
// rounds to nearest and says so. Both are run through the CLI on a copy of the fixture and
// compared with fp32 in onnxruntime-node by full recompute (empty KV cache) on six openings:
// BOS and one of fp32's six most likely first tokens, then 60 greedy tokens.
//
// Asserted: GPTQ lowers the relative logit error along fp32's texts against round to nearest,
// and the next-token agreement along fp32's texts does not drop. Free-running greedy agreement
// (tokens equal to fp32's at the same position) is printed, not asserted: one flipped near-tie
// ends it (measured 2026-12-05: GPTQ 9–24 of 60 per opening, round to nearest 1–20; target 45 not met; see
// docs/reconstruction.md "stories260K at W4").
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { CALIBRATION_PROMPTS, cli, copyFixture } from './helpers.ts';

const VOCAB = 512;
const ONE_THREAD: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
const { root, model } = copyFixture('w4-prompts');
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function logits(s: ort.InferenceSession, ids: number[]): Promise<Float32Array> {
  const n = ids.length;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [1, n]),
  };
  for (let l = 0; l < 5; l++) for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, 4, 0, 8]);
  return (await s.run(feeds)).logits!.data as Float32Array;
}

const argmax = (row: Float32Array): number => {
  let best = 0;
  for (let k = 1; k < row.length; k++) if (row[k]! > row[best]!) best = k;
  return best;
};

async function greedy(s: ort.InferenceSession, ids: number[], length: number): Promise<number[]> {
  const out = [...ids];
  while (out.length < length) out.push(argmax((await logits(s, out)).subarray((out.length - 1) * VOCAB, out.length * VOCAB)));
  return out;
}

/** Relative logit error along fp32's texts, next-token agreement along them, free-running agreement per opening. */
async function compare(fp32: ort.InferenceSession, references: number[][], path: string) {
  const s = await ort.InferenceSession.create(path, ONE_THREAD);
  try {
    let num = 0;
    let den = 0;
    let forced = 0;
    const free: number[] = [];
    for (const ref of references) {
      const want = await logits(fp32, ref);
      const got = await logits(s, ref);
      for (let i = 0; i < want.length; i++) {
        num += (got[i]! - want[i]!) ** 2;
        den += want[i]! ** 2;
      }
      for (let p = 1; p < ref.length - 1; p++) if (argmax(got.subarray(p * VOCAB, (p + 1) * VOCAB)) === ref[p + 1]) forced++;
      const tokens = await greedy(s, ref.slice(0, 2), ref.length);
      let agree = 0;
      for (let i = 2; i < ref.length; i++) if (tokens[i] === ref[i]) agree++;
      free.push(agree);
    }
    return { rel: Math.sqrt(num / den), forced, free };
  } finally {
    await s.release();
  }
}

describe('stories260K-hf W4 weight-only with a prompt list', () => {
  it('GPTQ from the prompts decodes closer to fp32 than round to nearest without data', async () => {
    const prompts = join(root, 'prompts.txt');
    writeFileSync(prompts, CALIBRATION_PROMPTS.join('\n') + '\n');
    const onnx = join(model, 'onnx', 'model.onnx');
    const rtnPath = join(root, 'rtn.onnx');
    const gptqPath = join(root, 'gptq.onnx');
    const reportPath = join(root, 'gptq.report.json');
    const common = ['--pass', 'q-arvd', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none', '--q-arvd.calib-threads', '1'];
    const rtn = await cli(onnx, ...common, '-o', rtnPath);
    expect(rtn.code, rtn.err).toBe(0);
    expect(rtn.err).toMatch(/weight-only without calibration data: weights rounded to nearest/);
    const gptq = await cli(onnx, ...common, '--q-arvd.prompts', prompts, '--q-arvd.report', reportPath, '-o', gptqPath);
    expect(gptq.code, gptq.err).toBe(0);
    const report = JSON.parse(readFileSync(reportPath, 'utf8')) as { layers: { mode: string; reconstruction?: { method: string } }[] };
    const quantized = report.layers.filter((l) => l.mode !== 'skipped');
    expect(quantized.length).toBeGreaterThan(0);
    expect(quantized.every((l) => l.reconstruction?.method === 'gptq')).toBe(true);

    const fp32 = await ort.InferenceSession.create(onnx, ONE_THREAD);
    try {
      const first = Array.from((await logits(fp32, [1])).subarray(0, VOCAB));
      const openings = first.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 6).map(([, i]) => i);
      const references: number[][] = [];
      for (const t of openings) references.push(await greedy(fp32, [1, t], 62));
      const r = await compare(fp32, references, rtnPath);
      const g = await compare(fp32, references, gptqPath);
      const total = 60 * references.length;
      console.log(`stories260K-hf W4 weight-only: round to nearest (no data) relative logit error ${r.rel.toFixed(4)}, along fp32's texts ${r.forced}/${total}, free-running ${r.free.join(', ')} of 60; GPTQ + bias correction from ${CALIBRATION_PROMPTS.length} prompts ${g.rel.toFixed(4)}, ${g.forced}/${total}, free-running ${g.free.join(', ')} of 60`);
      expect(g.rel).toBeLessThan(r.rel);
      expect(g.forced).toBeGreaterThanOrEqual(r.forced);
    } finally {
      await fp32.release();
    }
  }, 300_000);
});
