// The small-layer rule (src/passes/quant/small-layers.ts): layers too small for onnxruntime's
// integer kernels to pay are kept fp32 — their quantized weights stored as usual and
// dequantized by constants onnxruntime folds at load, one float MatMul — and the report says
// so. Not timed (the timings behind the rule are `npm run bench -- layer-forms`, docs/speed.md):
// these tests assert the decision per shape, the report's words, what onnxruntime runs, that
// the file keeps the 4-bit weights, and that the layers compute what the pass says.
// Models: the real tiny ARVD (examples/tiny-arvd: K = 64 everywhere but ffn.2's 256) and, for the
// weight-only rule, whose threshold (K = 768) only tiny-arvd-l's ffn.2 reaches, tiny-arvd-l
// (K = 48, 64 and 192 outside ffn.2).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { DEFAULT_QUANT_CONFIG, type QuantConfig } from '../../src/passes/quant/config.ts';
import { findLinearLayers } from '../../src/passes/quant/linear-layers.ts';
import { type ActivationRanges, quantizeLinearLayers } from '../../src/passes/quant/quantize-layers.ts';
import type { QuantReport } from '../../src/passes/quant/report.ts';
import { SMALL_LAYER_RULE } from '../../src/passes/quant/small-layers.ts';
import { type SharedQuantValues, toQuantConfig } from '../../src/passes/quant/quant-options.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import { diffModels } from '../../src/report/diff.ts';
import { formatDiff } from '../../src/report/diff-format.ts';
import { optimizedCensus } from '../helpers/census.ts';
import { removeDir, REPO_ROOT, scratchDir } from '../helpers/files.ts';
import { checkAgainstReference } from '../helpers/quant-reference.ts';
import { evalFeeds, quantFixture } from './quant-fixtures.ts';

const dir = scratchDir('small-layers');
afterAll(() => removeDir(dir));
const FP32 = join(REPO_ROOT, 'examples/tiny-arvd/model.onnx');
const FP32_L = join(REPO_ROOT, 'examples/tiny-arvd-l/model.onnx');

/** tiny-arvd (or `fp32`) quantized with `config` (activation ranges fixed at [-3, 4]), saved; the model, its path and the report. */
function quantizeTiny(partial: Partial<QuantConfig>, name: string, fp32 = FP32) {
  const model = loadModel(fp32);
  const config: QuantConfig = { ...DEFAULT_QUANT_CONFIG, ...partial };
  const ranges: ActivationRanges = new Map();
  for (const l of findLinearLayers(model.graph).layers) ranges.set(l.name, { min: new Float32Array(l.K).fill(-3), max: new Float32Array(l.K).fill(4) });
  const report = quantizeLinearLayers(model, config, {}, config.aBits === null ? undefined : ranges, config.dualScale ? 'q-arvd' : 'minmax');
  const path = join(dir, `${name}.onnx`);
  saveModel(model, path);
  return { model, path, report };
}

const quantized = (r: QuantReport) => r.layers.filter((l) => l.mode !== 'skipped');

describe('small-layer rule on tiny-arvd', () => {
  it('weight-only W4, one quantizer: K < 768 kept fp32 with the reason in the report, tiny-arvd-l\'s ffn.2 (K = 768) in MatMulNBits', async () => {
    const { path, report } = quantizeTiny({ wBits: 4, aBits: null, dualScale: false }, 'minmax-w4', FP32_L);
    const layers = quantized(report);
    const float = layers.filter((l) => l.compute === 'float');
    const integer = layers.filter((l) => l.compute === 'integer');
    expect(float.length).toBeGreaterThan(0);
    expect(integer.map((l) => l.name).sort()).toEqual(layers.filter((l) => l.K! >= SMALL_LAYER_RULE.weightOnlyMinK).map((l) => l.name).sort());
    expect(integer.length).toBe(6);
    expect(integer.every((l) => /ffn\.2/.test(l.name))).toBe(true);
    for (const l of float) {
      expect(l.K).toBeLessThan(SMALL_LAYER_RULE.weightOnlyMinK);
      expect(l.computeReason).toContain(`kept fp32: too small for integer kernels: weight-only layer with K = ${l.K} < ${SMALL_LAYER_RULE.weightOnlyMinK}`);
    }
    // What onnxruntime runs: one MatMulNBits per integer layer, and the float layers' folded
    // weights in float Gemms (the census names them), no Cast/DequantizeLinear left.
    const census = await optimizedCensus(path);
    expect(census.ops.MatMulNBits).toBe(integer.length);
    expect(census.floatWeights.length).toBe(float.length);
    expect(census.ops.Cast ?? 0).toBe(0);
    expect(census.ops.DequantizeLinear ?? 0).toBe(0);
  });

  it('weight-only W4 split layers (K < 1536) are kept fp32 too; integer-kernels always keeps every layer integer', async () => {
    const auto = quantizeTiny({ wBits: 4, aBits: null, dualScale: true }, 'q-arvd-w4');
    const dual = quantized(auto.report).filter((l) => l.mode === 'dual');
    expect(dual.length).toBeGreaterThan(0);
    for (const l of dual) {
      expect(l.compute).toBe('float');
      expect(l.computeReason).toContain(`weight-only split layer with K = ${l.K} < ${SMALL_LAYER_RULE.weightOnlySplitMinK}`);
    }
    // tiny-arvd-l's ffn.2 splits (K = 768): kept fp32 too since 2026-12-06 (1.3× their Gemm in its demo call).
    const large = quantized(quantizeTiny({ wBits: 4, aBits: null, dualScale: true }, 'q-arvd-w4-l', FP32_L).report).filter((l) => l.mode === 'dual' && l.K === 768);
    expect(large.length).toBe(6);
    for (const l of large) expect(l.computeReason).toContain(`weight-only split layer with K = 768 < ${SMALL_LAYER_RULE.weightOnlySplitMinK}`);
    const always = quantizeTiny({ wBits: 4, aBits: null, dualScale: true, integerKernels: 'always' }, 'q-arvd-w4-always');
    expect(quantized(always.report).every((l) => l.compute === 'integer' && l.computeReason === undefined)).toBe(true);
    expect((await optimizedCensus(always.path)).floatWeights).toEqual([]);
    // The float layers keep the 4-bit weights in the file (int4 behind the Cast).
    const int4 = [...auto.model.graph.initializers.values()].filter((v) => v.initializer!.dataType === DataType.INT4 && v.name.includes('/qarvd/'));
    expect(int4.length).toBeGreaterThanOrEqual(quantized(auto.report).length);
  });

  it('quantized activations: splits with K·N < 32768 kept fp32 (activations not quantized), single-scale layers stay integer', () => {
    const { report } = quantizeTiny({ wBits: 8, aBits: 8, dualScale: true }, 'q-arvd-w8a8');
    const layers = quantized(report);
    for (const l of layers) {
      const small = l.mode === 'dual' && l.K! * l.N! < SMALL_LAYER_RULE.activationSplitMinKN;
      expect(l.compute, l.name).toBe(small ? 'float' : 'integer');
      if (small) expect(l.computeReason).toContain('activations not quantized');
    }
    expect(layers.some((l) => l.compute === 'float')).toBe(true);
    expect(layers.some((l) => l.mode === 'single' && l.compute === 'integer')).toBe(true);
  });

  it('w4a8-kernel nbits: every layer in MatMulNBits behind its activation quantizer (a float fallback would drop the quantizer)', () => {
    const { model, report } = quantizeTiny({ wBits: 4, aBits: 8, dualScale: true, w4a8Kernel: 'nbits', format: 'qoperator' }, 'q-arvd-w4a8-nbits');
    const layers = quantized(report);
    expect(layers.every((l) => l.compute === 'integer' && l.computeReason === undefined)).toBe(true);
    const nodes = model.graph.nodes();
    expect(nodes.filter((n) => n.opType === 'MatMulNBits').length).toBe(layers.reduce((n, l) => n + (l.mode === 'dual' ? 2 : 1), 0));
    expect(nodes.filter((n) => n.opType === 'QuantizeLinear').length).toBeGreaterThanOrEqual(layers.length);
  });

  it('w8-kernel dynamic: the rule of quantized activations (single layers integer at every K, splits with K·N < 32768 kept fp32)', async () => {
    const { path, report } = quantizeTiny({ wBits: 8, aBits: null, dualScale: true, w8Kernel: 'dynamic' }, 'q-arvd-w8-dynamic');
    const layers = quantized(report);
    for (const l of layers) {
      const small = l.mode === 'dual' && l.K! * l.N! < SMALL_LAYER_RULE.activationSplitMinKN;
      expect(l.compute, l.name).toBe(small ? 'float' : 'integer');
      if (small) expect(l.computeReason).toContain('two DynamicQuantizeMatMul calls are slower than fp32');
    }
    // K = 64 single layers, which the MatMulNBits rule keeps fp32, are integer here.
    expect(layers.some((l) => l.mode === 'single' && l.K! < SMALL_LAYER_RULE.weightOnlyMinK && l.compute === 'integer')).toBe(true);
    expect(layers.some((l) => l.compute === 'float')).toBe(true);
    const census = await optimizedCensus(path);
    expect(census.floatWeights.length).toBe(layers.filter((l) => l.compute === 'float').length);
  });

  it('integer-kernels never: onnxruntime runs the same graph as for fp32, from a third of its weight bytes', async () => {
    const { path, report } = quantizeTiny({ wBits: 4, aBits: null, dualScale: true, integerKernels: 'never' }, 'never');
    expect(quantized(report).every((l) => l.compute === 'float' && l.computeReason === 'kept fp32: integer-kernels never')).toBe(true);
    expect((await optimizedCensus(path)).ops).toEqual((await optimizedCensus(FP32)).ops);
    // int4 weights plus float scales and zero points per column (and a split's channel order):
    // 0.32 of fp32's bytes on tiny-arvd, whose 64-column layers make the per-column part large.
    expect(report.totals.bytesAfter).toBeLessThan(report.totals.bytesBefore / 3);
  });

  it('the kept-fp32 layers compute x · dequantized W (the reference, to float rounding) in onnxruntime', async () => {
    const { model } = quantizeTiny({ wBits: 4, aBits: null, dualScale: true }, 'reference');
    const ref = await checkAgainstReference(model, evalFeeds(quantFixture('tiny-arvd')));
    expect(ref.layers.some((l) => l.branches.startsWith('fq(w-only) int4') && l.mode === 'dual')).toBe(true);
    for (const l of ref.layers) expect(l.violations, `${l.name}: ${l.firstViolation}`).toBe(0);
  });

  it('through the pass (options as the CLI resolves them): the log line, the statistic and the report file say which layers are kept fp32', async () => {
    const lines: string[] = [];
    const model = loadModel(FP32);
    const reportPath = join(dir, 'pass-report.json');
    const options = resolveOptions(qArvd, { 'w-bits': '4', 'a-bits': 'none', report: reportPath }) as unknown as SharedQuantValues;
    const result = await runQuantPass(model, { log: createLogger({ write: (l) => lines.push(l) }), verbose: false, modelDir: undefined }, options, 'q-arvd');
    const written = JSON.parse(readFileSync(reportPath, 'utf8')) as QuantReport;
    const kept = written.layers.filter((l) => l.compute === 'float');
    expect(kept.length).toBeGreaterThan(0);
    expect(result.stats!.floatCompute).toBe(kept.length);
    const keptLine = lines.find((l) => l.includes(`${kept.length} layer(s) kept fp32 (quantized weights dequantized at load, float MatMul): too small for integer kernels`));
    expect(keptLine).toBeDefined();
    expect(keptLine).toContain('(first; every reason is in the report)');
    expect(kept.every((l) => l.computeReason?.startsWith('kept fp32: too small for integer kernels'))).toBe(true);
    // The decision on the layer's final node says so too (what `convert diff` reads).
    const decisions = model.graph.nodes().map((n) => n.metadata.get('qarvd.decision')).filter((d) => d !== undefined).map((d) => JSON.parse(d!) as { compute?: string });
    expect(decisions.filter((d) => d.compute === 'float').length).toBe(kept.length);
    // And `convert diff` says so on each kept layer's line.
    const text = formatDiff(diffModels(loadModel(FP32), model), 'text');
    for (const l of kept) expect(text).toMatch(new RegExp(`^ {2}${l.name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} +\\[${l.K}×${l.N}\\] +(single|dual)-scale W${l.wBits} kept fp32 · `, 'm'));
    expect(text.match(/kept fp32/g)!.length).toBe(kept.length);
  });

  it('without a report the log line names the option that writes one (a user trial read "every reason is in the report" with none written)', async () => {
    const lines: string[] = [];
    const options = resolveOptions(qArvd, { 'w-bits': '4', 'a-bits': 'none' }) as unknown as SharedQuantValues;
    await runQuantPass(loadModel(FP32), { log: createLogger({ write: (l) => lines.push(l) }), verbose: false, modelDir: undefined }, options, 'q-arvd');
    const keptLine = lines.find((l) => l.includes('layer(s) kept fp32'));
    expect(keptLine).toContain('(first; --q-arvd.report <file> writes every reason)');
    expect(lines.join('\n')).not.toContain('in the report');
  });

  it('the option: integer-kernels auto by default, always/never as given', () => {
    const base = { wBits: '4', aBits: 'none', format: 'qdq', include: [], exclude: [], minK: 16, wSymmetric: false, aSymmetric: false, qdqDomain: 'ai.onnx', calib: '', report: '' };
    expect(toQuantConfig(base).integerKernels).toBe('auto');
    expect(toQuantConfig({ ...base, integerKernels: 'always' }).integerKernels).toBe('always');
    expect(toQuantConfig({ ...base, integerKernels: 'never' }).integerKernels).toBe('never');
  });
});
