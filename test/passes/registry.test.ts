import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import builtin from '../../plugins/builtin/index.ts';
import { definePass } from '../../src/passes/pass.ts';
import { createRegistry } from '../../src/api/registry.ts';
import { loadPluginModule, type Plugin, PluginError, validatePlugin } from '../../src/passes/plugin.ts';
import { PassRegistry, UnknownPassError } from '../../src/passes/registry.ts';

const pass = (name: string) => definePass({ name, summary: 's', options: {}, statistics: {}, run: () => ({ modified: false, stats: {} }) });

describe('PassRegistry', () => {
  it('registers the built-in plugin like any other', () => {
    const r = new PassRegistry();
    r.register(builtin);
    expect(r.names()).toEqual(['constants-to-initializers', 'dce']);
    expect(r.get('dce').plugin.name).toBe('builtin');
    expect(r.step('dce', { a: 1 })).toMatchObject({ plugin: 'builtin', options: { a: 1 } });
  });

  it('refuses a pass name already taken, naming both plugins, and registers nothing of the plugin', () => {
    const r = new PassRegistry();
    r.register(builtin);
    const other = { name: 'other', version: '1.0.0', passes: [pass('fresh'), pass('dce')] };
    expect(() => r.register(other)).toThrow('pass dce from plugin other clashes with pass dce from plugin builtin');
    expect(r.has('fresh')).toBe(false);
    expect(() => r.register(builtin)).toThrow('plugin builtin is already registered');
  });

  it('lists what exists for an unknown pass, with a suggestion', () => {
    const r = new PassRegistry();
    r.register(builtin);
    expect(() => r.get('dec')).toThrow(UnknownPassError);
    expect(() => r.get('dec')).toThrow("unknown pass 'dec' (did you mean dce?); known passes: constants-to-initializers, dce");
    expect(() => r.get('quantize')).toThrow("unknown pass 'quantize'; known passes: constants-to-initializers, dce");
  });
});

describe('validatePlugin', () => {
  it.each([
    [null, 'plugin p.mjs: the default export is null'],
    [{ version: '1', passes: [] }, 'plugin p.mjs: the default export has no name'],
    [{ name: 'x', passes: [] }, "plugin p.mjs: plugin 'x' has no version string"],
    [{ name: 'x', version: '1' }, "plugin p.mjs: plugin 'x' has no passes array"],
    [{ name: 'x', version: '1', passes: [{ name: 'a', summary: 's', options: {}, statistics: {} }] }, 'plugin p.mjs: pass a has no run function'],
    [{ name: 'x', version: '1', passes: [{ summary: 's', run() {} }] }, 'plugin p.mjs: passes[0] has no name'],
    [{ name: 'x', version: '1', passes: [pass('a'), pass('a')] }, 'plugin p.mjs: pass a is listed twice'],
  ])('rejects %j', (value, message) => {
    expect(() => validatePlugin(value, 'p.mjs')).toThrow(PluginError);
    expect(() => validatePlugin(value, 'p.mjs')).toThrow(message);
  });
});

describe('loadPluginModule', () => {
  const dir = mkdtempSync(join(tmpdir(), 'qarvd-plugins-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const good = `export default { name: 'mine', version: '0.0.1', passes: [{ name: 'noop', summary: 'does nothing', options: {}, statistics: {}, run: () => ({ modified: false, stats: {} }) }] };\n`;

  it('loads a .mjs plugin relative to the working folder', async () => {
    file('good.mjs', good);
    const p = await loadPluginModule('good.mjs', dir);
    expect(p.name).toBe('mine');
    expect(p.passes.map((x) => x.name)).toEqual(['noop']);
  });

  it('loads a .ts plugin', async () => {
    file('typed.ts', `const n: string = 'typed';\n${good.replace("'mine'", 'n')}`);
    expect((await loadPluginModule(join(dir, 'typed.ts'))).name).toBe('typed');
  });

  it('loads a CommonJS .cjs plugin (a plugin author\'s trial: refused although Node imports it)', async () => {
    file('common.cjs', `module.exports = ${good.replace('export default ', '').replace("'mine'", "'common'")}`);
    expect((await loadPluginModule('common.cjs', dir)).name).toBe('common');
  });

  it('createRegistry checks a plugin object as it checks a module, names it once, and loads a module named twice once (a plugin author\'s trial)', async () => {
    const bad = async (entry: unknown, says: string | RegExp) => {
      const err = await createRegistry([entry as Plugin]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PluginError);
      if (typeof says === 'string') expect((err as Error).message).toBe(says);
      else expect((err as Error).message).toMatch(says);
    };
    // They were TypeErrors: plugin.passes.find is not a function, cannot read properties of null.
    await bad({ name: 'x3', version: '1', passes: 'p' }, "plugin (object x3): plugin 'x3' has no passes array");
    await bad(null, 'plugin (a plugin object): the default export is null, not { name, version, passes }');
    // The prefix once, not 'plugin (object x1): plugin (object x1): …'.
    await bad({ name: 'x1', version: '1', passes: [{ ...pass('p-x1'), options: { k: { type: 'float', help: 'h', default: 1 } } }] }, /^plugin \(object x1\): pass p-x1 option k (?!.*plugin \(object x1\))/);
    file('twice.mjs', good.replace("'mine'", "'twice'").replace("'noop'", "'noop-twice'"));
    const r = await createRegistry([join(dir, 'twice.mjs'), join(dir, '.', 'twice.mjs')]);
    expect(r.names()).toContain('noop-twice');
  });

  it.each([
    ['missing.mjs', undefined, 'plugin missing.mjs: no such file'],
    ['plugin.json', '{}', "cannot load a '.json' file"],
    ['named.mjs', 'export const passes = [];\n', 'plugin named.mjs: no default export (it exports passes)'],
    ['broken.mjs', 'export default {\n', 'plugin broken.mjs: failed to import'],
    ['norun.mjs', "export default { name: 'x', version: '1', passes: [{ name: 'p', summary: 's', options: {}, statistics: {} }] };\n", 'plugin norun.mjs: pass p has no run function'],
  ])('rejects %s naming the file', async (name, text, message) => {
    if (text !== undefined) file(name, text);
    const err = await loadPluginModule(name, dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect((err as Error).message).toContain(message);
  });
});
