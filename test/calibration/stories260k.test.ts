// W8A8 on stories260K with a plain-feeds calibration module: calibrate once (scale search,
// table saved), quantize again from the table without the module (QDQ, bit-identical) and in
// QOperator form; both run in onnxruntime-node, the relative logit error is printed, and
// greedy decoding of 60 tokens from token 1 (full recompute each step) is compared with fp32.
//
// What is asserted about greedy decoding without smoothing: the next-token agreement along fp32's own greedy
// text (the quantized model's argmax at each of the 60 positions, given fp32's tokens) is at
// least 55 of 60. Free-running greedy agreement is printed but not asserted: at W8A8 with
// per-tensor static activations the logits are off by about 2% (relative), and fp32's greedy
// path has near-ties (top-2 logit margins 0.13–0.24 at tokens 21, 28, 40, 49 and 54), so the
// first flip — after which the texts part and every later position counts as a mismatch —
// lands anywhere from token 21 to never, depending on the calibration set (measured 21–60).
// Most of that 2% is the w2 inputs (the SwiGLU products, median |x| 0.06–0.16 against a
// largest |x| of 3.8–9.3 per tensor): W8 weights alone give 0.0095, adding A8 on the five w2 layers
// alone 0.0225, A8 on every layer but w2 0.0121. The absolute logit error (≈ 0.2 against an
// rms logit of 9.4) is the size of those margins. A search on the whole calibration set
// (no row sampling) gives the same error.
//
// What fixes it, and what is asserted for free-running greedy decoding: smooth-quant
// (SmoothQuant α 0.5, an opt-in option: divide each layer input channel by
// s = max|X|^α / max|W|^(1−α), multiply the weight rows by s) narrows the per-tensor ranges.
// With it q-arvd W8A8 decodes 60/60 free-running at a relative logit error of 0.013–0.016 on
// four calibration sets (openings 2–9, 10–17, 18–25, 26–33; measured while choosing α, which
// stayed at SmoothQuant's default); without it the same sets give 20, 60, 20, 60.
//
// The calibration set, fixed before measuring anything: the fp32 model's own greedy text,
// 8 sequences of 64 tokens, each opened by one of its 2nd–9th most likely first tokens after
// BOS (the most likely opening is left out: its greedy text is the evaluation text itself).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/graph/serde/io.ts';
import { encodeModel } from '../../src/graph/proto/codec.ts';
import { inlineSink } from '../../src/graph/serde/external-sink.ts';
import { modelToProto } from '../../src/graph/serde/to-proto.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import type { CalibrationTable } from '../../src/passes/calibration/table.ts';
import { silentLogger } from '../../src/passes/log.ts';
import minmax from '../../src/passes/minmax.ts';
import { type Pass, resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const MODEL = 'test/fixtures/stories260K/stories260K.onnx';
const VOCAB = 512;
const ONE_THREAD: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1 };
const dir = scratchDir('calib-stories');
let fp32: ort.InferenceSession;
let calibSeqs: number[][];
let reference: number[];

async function logits(s: ort.InferenceSession, ids: number[]): Promise<Float32Array> {
  const t = new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]);
  return (await s.run({ input_ids: t })).logits!.data as Float32Array;
}

/** Greedy continuation of `ids` to `length` tokens, recomputing the whole sequence each step. */
async function greedy(s: ort.InferenceSession, ids: number[], length: number): Promise<number[]> {
  const out = [...ids];
  while (out.length < length) {
    const l = await logits(s, out);
    const row = l.subarray((out.length - 1) * VOCAB, out.length * VOCAB);
    let best = 0;
    for (let k = 1; k < VOCAB; k++) if (row[k]! > row[best]!) best = k;
    out.push(best);
  }
  return out;
}

const calibration = (): CalibrationModule => ({
  samples: calibSeqs.length,
  *feeds(ctx) {
    const ids = calibSeqs[ctx.sample]!;
    yield { feeds: { input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, ids.length]) } };
  },
});

async function quantize(pass: Pass<unknown>, raw: Record<string, unknown>, calib?: CalibrationModule) {
  const model = loadModel(MODEL);
  const options = resolveOptions(pass, { 'calib-threads': 1, ...raw }) as unknown as SharedQuantValues;
  if (pass === minmax) options.dualScale = false;
  const result = await runQuantPass(model, { log: silentLogger, verbose: false, modelDir: undefined }, options, pass.name, calib);
  return { model, report: result.report as QuantReport, bytes: encodeModel(modelToProto(model, inlineSink) as Parameters<typeof encodeModel>[0]) };
}

async function evaluate(bytes: Uint8Array) {
  const s = await ort.InferenceSession.create(bytes, ONE_THREAD);
  try {
    const tokens = await greedy(s, [1], 61);
    let agree = 0;
    for (let i = 1; i < 61; i++) if (tokens[i] === reference[i]) agree++;
    const want = await logits(fp32, reference);
    const got = await logits(s, reference);
    let num = 0;
    let den = 0;
    for (let i = 0; i < want.length; i++) {
      num += (got[i]! - want[i]!) ** 2;
      den += want[i]! ** 2;
    }
    // Next-token agreement along fp32's greedy text: argmax at positions 0…59 vs fp32's tokens 1…60.
    let forced = 0;
    for (let p = 0; p < 60; p++) {
      const row = got.subarray(p * VOCAB, (p + 1) * VOCAB);
      let best = 0;
      for (let k = 1; k < VOCAB; k++) if (row[k]! > row[best]!) best = k;
      if (best === reference[p + 1]) forced++;
    }
    return { agree, forced, rel: Math.sqrt(num / den) };
  } finally {
    await s.release();
  }
}

beforeAll(async () => {
  fp32 = await ort.InferenceSession.create(MODEL, ONE_THREAD);
  reference = await greedy(fp32, [1], 61);
  const first = Array.from((await logits(fp32, [1])).subarray(0, VOCAB));
  const openings = first.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(1, 9).map(([, i]) => i);
  calibSeqs = [];
  for (const t of openings) calibSeqs.push(await greedy(fp32, [1, t], 64));
});

afterAll(async () => {
  await fp32?.release();
  removeDir(dir);
});

describe('stories260K W8A8 with a feeds calibration module', () => {
  it('calibrates once, quantizes QDQ and QOperator from the table, and decodes like fp32', async () => {
    const table = join(dir, 'stories.calibration.json');
    const searched = await quantize(qArvd, { 'save-calibration': table }, calibration());
    // Calibrate once, quantize many times: the table alone (no module, no onnxruntime) gives
    // the same QDQ model byte for byte, and the QOperator form.
    const again = await quantize(qArvd, { 'load-calibration': table });
    expect(Buffer.compare(Buffer.from(again.bytes), Buffer.from(searched.bytes))).toBe(0);
    const qop = await quantize(qArvd, { 'load-calibration': table, format: 'qoperator' });
    // Plain min/max on the same calibration set: no search, no reconstruction (what q-arvd did before calibration).
    // fold-split off: it permutes w2's rows, which moves every later layer's input by float rounding.
    const plain = await quantize(qArvd, { 'scale-search': false, reconstruct: 'none', 'bias-correction': false, 'fold-split': false }, calibration());
    // The same search on random token ids (8 × 64, uniform over the vocabulary) for comparison.
    const randomTokens: CalibrationModule = {
      samples: 8,
      *feeds(ctx) {
        yield { feeds: { input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: 64 }, () => BigInt(ctx.random.int(VOCAB))), [1, 64]) } };
      },
    };
    const random = await quantize(qArvd, {}, randomTokens);
    // smooth-quant: calibrate once, then the table (which records the factors) alone gives
    // the same model again, and the QOperator form.
    const smoothTable = join(dir, 'stories.smooth.calibration.json');
    const smooth = await quantize(qArvd, { 'smooth-quant': true, 'save-calibration': smoothTable }, calibration());
    const smoothAgain = await quantize(qArvd, { 'smooth-quant': true, 'load-calibration': smoothTable });
    expect(Buffer.compare(Buffer.from(smoothAgain.bytes), Buffer.from(smooth.bytes))).toBe(0);
    const smoothQop = await quantize(qArvd, { 'smooth-quant': true, 'load-calibration': smoothTable, format: 'qoperator' });
    // A table made with smoothing does not fit an unsmoothed run (and the reverse).
    await expect(quantize(qArvd, { 'load-calibration': smoothTable })).rejects.toThrow(/was made with smooth-quant \(α 0\.5\); give smooth-quant too/);
    await expect(quantize(qArvd, { 'smooth-quant': true, 'load-calibration': table })).rejects.toThrow(/was made without smooth-quant/);
    expect(smooth.report.smoothing).toMatchObject({ alpha: 0.5, inputs: 21, layers: 36 });

    const results = {
      'q-arvd qdq': await evaluate(searched.bytes),
      'q-arvd qoperator': await evaluate(qop.bytes),
      'q-arvd qdq, plain min/max': await evaluate(plain.bytes),
      'q-arvd qdq, random-token calibration': await evaluate(random.bytes),
      'q-arvd qdq smooth-quant': await evaluate(smooth.bytes),
      'q-arvd qoperator smooth-quant': await evaluate(smoothQop.bytes),
    };
    for (const [name, r] of Object.entries(results)) {
      console.log(`stories260K W8A8 ${name}: relative logit error ${r.rel.toFixed(4)}; next-token agreement on fp32's greedy text ${r.forced}/60; free-running greedy ${r.agree}/60 tokens as fp32`);
    }

    // The report: per branch the chosen candidate and every candidate's error, per chunk the
    // layer error before/after the search; α = 1 for a single untagged chunk.
    const r = searched.report;
    expect(r.calibration).toMatchObject({ kind: 'feeds', samples: 8, scaleSearch: true, chunks: [0] });
    expect(r.alpha).toEqual([1]);
    expect(r.sensitivity).toBeUndefined();
    const quantized = r.layers.filter((l) => l.mode !== 'skipped');
    // The layers around the repeated blocks keep float inputs (outer-activations float, q-arvd's default): no activation quantizer, no search.
    const floatInputs = quantized.filter((l) => l.aBits === undefined || l.aBits === null);
    expect(floatInputs.map((l) => l.wBits)).toEqual(floatInputs.map(() => 8));
    for (const l of quantized.filter((x) => !floatInputs.includes(x))) {
      for (const a of l.activation!) {
        expect(a.candidates!.map((c) => c.candidate)[0]).toBe('minmax');
        expect(a.candidates!.find((c) => c.candidate === a.candidate)!.error).toBe(Math.min(...a.candidates!.map((c) => c.error)));
      }
      expect(l.outputError!.before).toHaveLength(1);
    }
    const saved = JSON.parse(readFileSync(table, 'utf8')) as CalibrationTable;
    // The table holds the searched layers; a layer with float inputs has nothing searched to keep.
    expect(floatInputs.map((l) => l.name)).toEqual(['/MatMul']);
    expect(Object.keys(saved.layers).sort()).toEqual(quantized.filter((l) => !floatInputs.includes(l)).map((l) => l.name).sort());
    expect(qop.report.layers.map((l) => l.activation?.map((a) => a.scale))).toEqual(r.layers.map((l) => l.activation?.map((a) => a.scale)));

    for (const name of ['q-arvd qdq', 'q-arvd qoperator'] as const) {
      expect(results[name].forced).toBeGreaterThanOrEqual(55);
      expect(results[name].rel).toBeLessThan(0.03);
      // Calibration (search, GPTQ, bias correction) lowers the logit error against plain min/max on the same set.
      expect(results[name].rel).toBeLessThan(results['q-arvd qdq, plain min/max'].rel);
      // With smooth-quant: free-running greedy decoding as fp32, and a smaller logit error.
      const smoothed = results[`${name} smooth-quant`];
      expect(smoothed.agree).toBeGreaterThanOrEqual(55);
      expect(smoothed.forced).toBeGreaterThanOrEqual(55);
      expect(smoothed.rel).toBeLessThan(results[name].rel);
    }
  });

  it('scale-search false emits exactly what minmax emits on single-scale layers', async () => {
    // Plain min/max on the same calibration set: no search, no reconstruction (what q-arvd did before calibration).
    // fold-split off: it permutes w2's rows, which moves every later layer's input by float rounding.
    const plain = await quantize(qArvd, { 'scale-search': false, reconstruct: 'none', 'bias-correction': false, 'fold-split': false }, calibration());
    const base = await quantize(minmax, {}, calibration());
    const single = plain.report.layers.filter((l) => l.mode === 'single');
    expect(single.length).toBeGreaterThan(0);
    for (const l of single) {
      const m = base.report.layers.find((e) => e.name === l.name)!;
      expect(l.activation).toEqual(m.activation);
    }
  });
});

describe('stories260K W4 weight-only with the calibration text', () => {
  it('GPTQ reconstruction decodes closer to fp32 than round to nearest', async () => {
    const rtn = await evaluate((await quantize(qArvd, { 'w-bits': '4', 'a-bits': 'none' })).bytes);
    const gptq = await quantize(qArvd, { 'w-bits': '4', 'a-bits': 'none' }, calibration());
    const r = await evaluate(gptq.bytes);
    console.log(`stories260K W4 weight-only: round to nearest (no data) relative logit error ${rtn.rel.toFixed(4)}, free-running greedy ${rtn.agree}/60, along fp32's text ${rtn.forced}/60; GPTQ + bias correction on the 8 calibration sequences ${r.rel.toFixed(4)}, ${r.agree}/60, ${r.forced}/60`);
    expect(gptq.report.layers.filter((l) => l.mode !== 'skipped').every((l) => l.reconstruction?.method === 'gptq')).toBe(true);
    expect(r.rel).toBeLessThan(rtn.rel);
    expect(r.forced).toBeGreaterThanOrEqual(rtn.forced);
  }, 600_000);
});
