// transformers.js dtype names → file names, typo detection and the meaning checks, as pure
// functions (the CLI's use of them is in folder-errors.test.ts).
import { describe, expect, it } from 'vitest';
import { checkVariantMeaning, DTYPE_SUFFIX, nearDtypes, resolveVariantName } from '../../src/hf/dtypes.ts';
import { editDistance } from '../../src/passes/near-names.ts';

const W8A8 = { pass: 'q-arvd', wBits: 8, aBits: 8, wSymmetric: false };
const W4 = { pass: 'q-arvd', wBits: 4, aBits: null, wSymmetric: false };

describe('transformers.js dtypes', () => {
  it('map to the exact suffixes transformers.js loads', () => {
    expect(DTYPE_SUFFIX).toEqual({ fp32: '', fp16: '_fp16', q8: '_quantized', int8: '_int8', uint8: '_uint8', q4: '_q4', q4f16: '_q4f16', bnb4: '_bnb4' });
    expect(resolveVariantName('q8')).toEqual({ name: 'q8', suffix: '_quantized', isDtype: true });
    expect(resolveVariantName('qarvd')).toEqual({ name: 'qarvd', suffix: '_qarvd', isDtype: false });
    expect(resolveVariantName('w4a8-qarvd')).toEqual({ name: 'w4a8-qarvd', suffix: '_w4a8-qarvd', isDtype: false });
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
  });
});
