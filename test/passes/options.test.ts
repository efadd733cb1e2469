import { describe, expect, it } from 'vitest';
import { camelCase, definePass, PassOptionError, resolveOptions } from '../../src/passes/pass.ts';

const quant = definePass({
  name: 'q-test',
  summary: 'a pass with one option of each type',
  options: {
    'w-bits': { type: 'integer', default: 8, help: 'weight bits' },
    ratio: { type: 'number', default: 0.5, help: 'a ratio' },
    symmetric: { type: 'boolean', default: true, help: 'symmetric ranges' },
    'op-name': { type: 'string', default: 'MatMul', help: 'an op type' },
    exclude: { type: 'string[]', default: [], help: 'node names to leave alone' },
    method: { type: 'enum', choices: ['minmax', 'percentile', 'entropy'], default: 'minmax', help: 'calibration method' },
  },
  statistics: {},
  run: (_model, _ctx, o) => {
    // Compile-time check that the options object is typed from the declarations.
    const bits: number = o.wBits;
    const method: 'minmax' | 'percentile' | 'entropy' = o.method;
    void bits;
    void method;
    return { modified: false, stats: {} };
  },
});

describe('resolveOptions', () => {
  it('applies defaults and camelCases keys', () => {
    expect(resolveOptions(quant, {})).toEqual({ wBits: 8, ratio: 0.5, symmetric: true, opName: 'MatMul', exclude: [], method: 'minmax' });
  });

  it('coerces CLI strings', () => {
    const o = resolveOptions(quant, { 'w-bits': '4', ratio: ' 0.25 ', symmetric: 'false', exclude: 'a, b,,c', method: 'entropy', 'op-name': '007' });
    expect(o).toEqual({ wBits: 4, ratio: 0.25, symmetric: false, opName: '007', exclude: ['a', 'b', 'c'], method: 'entropy' });
  });

  it('accepts JSON values and repeated list flags', () => {
    expect(resolveOptions(quant, { 'w-bits': 2, symmetric: true, exclude: ['x,y', 'z'] })).toMatchObject({ wBits: 2, symmetric: true, exclude: ['x', 'y', 'z'] });
    expect(resolveOptions(quant, { symmetric: '1' })).toMatchObject({ symmetric: true });
    expect(resolveOptions(quant, { symmetric: '0' })).toMatchObject({ symmetric: false });
  });

  it('rejects an unknown key, listing the valid keys', () => {
    expect(() => resolveOptions(quant, { wBits: 4 })).toThrow(PassOptionError);
    expect(() => resolveOptions(quant, { wBits: 4 })).toThrow(
      "pass q-test: unknown option 'wBits' (did you mean w-bits?); valid keys: w-bits, ratio, symmetric, op-name, exclude, method",
    );
    const none = definePass({ name: 'none', summary: 's', options: {}, statistics: {}, run: () => ({ modified: false, stats: {} }) });
    expect(() => resolveOptions(none, { x: 1 })).toThrow("pass none: unknown option 'x'; this pass takes no options");
  });

  it.each([
    [{ 'w-bits': '4.5' }, "option w-bits expects an integer, got '4.5'"],
    [{ 'w-bits': 'four' }, "option w-bits expects an integer, got 'four'"],
    [{ 'w-bits': '' }, "option w-bits expects an integer, got ''"],
    [{ 'w-bits': true }, 'option w-bits expects an integer, got no value'],
    [{ 'w-bits': ['4', '8'] }, "option w-bits expects a single integer value, got ['4', '8']"],
    [{ ratio: 'NaN' }, "option ratio expects a number, got 'NaN'"],
    [{ ratio: 'Infinity' }, "option ratio expects a number, got 'Infinity'"],
    [{ symmetric: 'yes please' }, "option symmetric expects a boolean (true or false), got 'yes please'"],
    [{ 'op-name': 3 }, 'option op-name expects a string, got 3'],
    [{ exclude: [1] }, 'option exclude expects a list of strings'],
    [{ method: 'mse' }, "option method expects one of minmax, percentile, entropy, got 'mse'"],
  ])('rejects %j naming option, type and value', (raw, message) => {
    expect(() => resolveOptions(quant, raw)).toThrow(`pass q-test: ${message}`);
  });

  it('rejects options that are not an object', () => {
    expect(() => resolveOptions(quant, 'w-bits=4' as never)).toThrow('options must be an object');
  });
});

describe('definePass', () => {
  const base = { summary: 's', statistics: {}, run: () => ({ modified: false, stats: {} }) };
  it.each([
    [{ name: 'BadName', options: {} }, "name 'BadName' is not kebab-case"],
    [{ name: 'p', options: { wBits: { type: 'integer', default: 1, help: 'h' } } }, "option key 'wBits' is not kebab-case"],
    [{ name: 'p', options: { k: { type: 'float', default: 1, help: 'h' } } }, "option k has type 'float'"],
    [{ name: 'p', options: { k: { type: 'integer', default: 1.5, help: 'h' } } }, 'option k has an invalid default'],
    [{ name: 'p', options: { k: { type: 'enum', default: 'a', help: 'h' } } }, 'enum option k needs a non-empty list'],
    [{ name: 'p', options: { k: { type: 'enum', choices: ['a'], default: 'b', help: 'h' } } }, 'option k has an invalid default'],
  ])('rejects a malformed declaration %#', (decl, message) => {
    expect(() => definePass({ ...base, ...(decl as object) } as never)).toThrow(message);
  });

  it('camelCases kebab keys', () => {
    expect(camelCase('w-bits')).toBe('wBits');
    expect(camelCase('a-b-c2')).toBe('aBC2');
    expect(camelCase('plain')).toBe('plain');
  });
});
