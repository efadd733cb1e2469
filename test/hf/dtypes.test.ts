// transformers.js dtype names → file names, typo detection and the meaning checks, as pure
// functions (the CLI's use of them is in folder-errors.test.ts).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { scanModelFolder } from '../../src/hf/folder.ts';
import { checkVariantMeaning, DTYPE_SUFFIX, DTYPES, nearDtypes, resolveVariantName } from '../../src/hf/dtypes.ts';
import { editDistance } from '../../src/passes/near-names.ts';

// transformers.js's own table, from the installed package: its index does not export it, so
// the module is imported by path (a typed import of an untyped .js would not type check).
const TJS_DTYPES = '../../node_modules/@huggingface/transformers/src/utils/dtypes.js';
const tjs = (await import(TJS_DTYPES)) as { DEFAULT_DTYPE_SUFFIX_MAPPING: Record<string, string>; DATA_TYPES: Record<string, string> };

const W8A8 = { pass: 'q-arvd', wBits: 8, aBits: 8, wSymmetric: false };
const W4 = { pass: 'q-arvd', wBits: 4, aBits: null, wSymmetric: false };

describe('transformers.js dtypes', () => {
  it('map to the exact suffixes transformers.js loads: every dtype of the installed transformers.js', () => {
    expect(DTYPE_SUFFIX).toEqual(tjs.DEFAULT_DTYPE_SUFFIX_MAPPING);
    // 'auto' is no file of its own: transformers.js resolves it to another dtype.
    expect(DTYPES).toEqual(Object.keys(tjs.DATA_TYPES).filter((d) => d !== 'auto'));
    expect(resolveVariantName('q8')).toEqual({ name: 'q8', suffix: '_quantized', isDtype: true });
    expect(resolveVariantName('qarvd')).toEqual({ name: 'qarvd', suffix: '_qarvd', isDtype: false });
    expect(resolveVariantName('w4a8-qarvd')).toEqual({ name: 'w4a8-qarvd', suffix: '_w4a8-qarvd', isDtype: false });
  });

  it("of transformers.js's own that convert does not produce still mark variant files, not fp32 base graphs", () => {
    // Found by review: model_q2.onnx was taken for a base graph and quantized into model_q2_q4.onnx.
    const dir = mkdtempSync(join(tmpdir(), 'qarvd-dtypes-'));
    try {
      mkdirSync(join(dir, 'onnx'));
      writeFileSync(join(dir, 'config.json'), '{}');
      // Only names are read (a dtype's suffix is decided before any graph is loaded).
      for (const f of ['model.onnx', 'model_q2.onnx', 'model_q1f16.onnx', 'model_q2f16.onnx', 'model_q1.onnx']) writeFileSync(join(dir, 'onnx', f), '');
      expect(scanModelFolder(dir).bases).toEqual(['model.onnx']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('take near misses for typos (distance 2, or 1 for short names; case ignored), not distant names', () => {
    expect(editDistance('q88', 'q8')).toBe(1);
    expect(editDistance('fp61', 'fp16')).toBe(1);
    expect(nearDtypes('q88')).toEqual(['q8']);
    expect(nearDtypes('qint8')).toEqual(['int8', 'uint8']);
    expect(nearDtypes('Q4')).toEqual(['q4']);
    expect(nearDtypes('fp61')).toEqual(['fp16']);
    expect(nearDtypes('q4f61')).toEqual(['q4f16']);
    expect(nearDtypes('ab')).toEqual([]);
    expect(nearDtypes('qarvd')).toEqual([]);
    expect(nearDtypes('w4a8')).toEqual([]);
    expect(() => resolveVariantName('uint88')).toThrow(/did you mean 'uint8'\?/);
    expect(() => resolveVariantName('a/b')).toThrow(/'\/' is not allowed: use letters, digits/);
  });

  it("refuse a name whose file is a dtype's file, and say what is wrong with a name of allowed characters", () => {
    // Found by a user trial: --variant quantized wrote W4 weights to model_quantized.onnx, q8's file.
    expect(() => resolveVariantName('quantized')).toThrow(/--variant 'quantized' writes <base>_quantized\.onnx, the file transformers\.js loads for dtype 'q8'; use --variant q8/);
    expect(() => resolveVariantName('Quantized')).toThrow(/loads for dtype 'q8'/);
    expect(() => resolveVariantName('QUANTIZED')).toThrow(/loads for dtype 'q8'/);
    // A case variant of a dtype's own name stays a typo.
    expect(() => resolveVariantName('Q4F16')).toThrow(/did you mean 'q4f16'\?/);
    expect(() => resolveVariantName('..')).toThrow(/--variant '\.\.': must start with a letter or digit/);
    expect(() => resolveVariantName('_quantized')).toThrow(/must start with a letter or digit \(convert adds the '_' itself: --variant q8\)/);
    expect(() => resolveVariantName('_mine')).toThrow(/--variant mine\)/);
    expect(() => resolveVariantName('.hidden')).not.toThrow(/use letters/);
  });

  it('are refused when the output does not have their meaning', () => {
    expect(() => checkVariantMeaning(resolveVariantName('q8'), W8A8)).not.toThrow();
    expect(() => checkVariantMeaning(resolveVariantName('int8'), W8A8)).not.toThrow();
    expect(() => checkVariantMeaning(resolveVariantName('int8'), { ...W8A8, wSymmetric: true })).not.toThrow();
    expect(() => checkVariantMeaning(resolveVariantName('q4'), W4)).not.toThrow();
    expect(() => checkVariantMeaning(resolveVariantName('mine'), {})).not.toThrow();
    expect(() => checkVariantMeaning(resolveVariantName('q8'), W4)).toThrow(/q8 means 8-bit quantized weights, but this q-arvd run has w-bits 4, a-bits none/);
    expect(() => checkVariantMeaning(resolveVariantName('q4'), { ...W4, aBits: 8 })).toThrow(/q4 means 4-bit weight-only/);
    expect(() => checkVariantMeaning(resolveVariantName('uint8'), W8A8)).toThrow(/stores 8-bit weights as int8/);
    for (const d of ['fp16', 'q4f16', 'bnb4']) expect(() => checkVariantMeaning(resolveVariantName(d), W4)).toThrow(/no pass here produces that format/);
    expect(() => checkVariantMeaning(resolveVariantName('fp32'), W8A8)).toThrow(/fp32 is the base model itself/);
    // transformers.js's 2- and 1-bit dtypes (found by review: --variant q2 said it was no dtype at all).
    expect(resolveVariantName('q2')).toEqual({ name: 'q2', suffix: '_q2', isDtype: true });
    expect(() => checkVariantMeaning(resolveVariantName('q2'), W4)).toThrow(/^--variant q2 is a transformers\.js dtype \(2-bit weights\) that convert does not produce; use q4/);
    expect(() => checkVariantMeaning(resolveVariantName('q1f16'), W8A8)).toThrow(/^--variant q1f16 is a transformers\.js dtype \(1-bit weights, float16 activations\) that convert does not produce/);
    for (const d of ['q2f16', 'q1']) expect(() => checkVariantMeaning(resolveVariantName(d), W4)).toThrow(/that convert does not produce/);
  });
});
