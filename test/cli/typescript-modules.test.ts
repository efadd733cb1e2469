// A user's TypeScript calibration module and plugin, loaded by the compiled package (dist/,
// built by the global setup) the way `convert --q-arvd.calib calib.ts --plugin plugin.ts` loads
// them, in a child Node without tsx preloaded: in a `"type": "commonjs"` package (what `npm init
// -y` writes) and in a `"type": "module"` one, with named exports and with `export default`.
// tsx comes from this checkout's node_modules, as it would from the user's project.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('ts-modules');
afterAll(() => removeDir(dir));

const FILES: Record<string, string> = {
  'helper.ts': 'export const helper = (n: number): number => n + 1;\n',
  // Named exports, and a local .ts import.
  'calib.ts': `import { helper } from './helper.ts';
export const samples: number = 2;
export async function* feeds(ctx: { sample: number }) {
  yield { feeds: { x: helper(ctx.sample) } } as never;
}
`,
  // The same as one default export, which loadCalibrationModule accepts too.
  'calib-default.ts': `import { helper } from './helper.ts';
export default {
  samples: 3,
  async *feeds(ctx: { sample: number }) {
    yield { feeds: { x: helper(ctx.sample) } } as never;
  },
};
`,
  // A plugin is always a default export.
  'plugin.ts': `const plugin: { name: string; version: string; passes: unknown[] } = { name: 'ts-plugin', version: '1.0.0', passes: [] };
export default plugin;
`,
};

function loadInChild(projectType: 'commonjs' | 'module'): { status: number | null; out: string; err: string } {
  const project = join(dir, projectType);
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `user-${projectType}`, type: projectType }));
  for (const [name, text] of Object.entries(FILES)) writeFileSync(join(project, name), text);
  const lib = (p: string) => JSON.stringify(pathToFileURL(join(REPO_ROOT, 'dist/src', p)).href);
  const script = `const { loadCalibrationModule } = await import(${lib('passes/calibration/module.js')});
const { loadPluginModule } = await import(${lib('passes/plugin.js')});
const named = await loadCalibrationModule('calib.ts');
const byDefault = await loadCalibrationModule('calib-default.ts');
const plugin = await loadPluginModule('plugin.ts');
console.log(JSON.stringify({ named: named.samples, byDefault: byDefault.samples, plugin: plugin.name }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr };
}

describe('TypeScript calibration modules and plugins loaded by the compiled package', () => {
  for (const type of ['commonjs', 'module'] as const) {
    it(`load in a "type": "${type}" package: named exports, default exports and their own .ts imports`, () => {
      const r = loadInChild(type);
      expect(r.status, r.err).toBe(0);
      expect(JSON.parse(r.out)).toEqual({ named: 2, byDefault: 3, plugin: 'ts-plugin' });
    });
  }
});
