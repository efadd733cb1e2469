// A user's TypeScript calibration module, imported by the compiled package (dist/, built by the
// global setup) the way `convert --q-arvd.calib calib.ts` imports it, in a child Node without
// tsx preloaded: in a `"type": "commonjs"` package (what `npm init -y` writes) and in a
// `"type": "module"` one. tsx comes from this checkout's node_modules, as it would from the
// user's project.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('ts-modules');
afterAll(() => removeDir(dir));

const MODULE = `import { helper } from './helper.ts';
export const samples: number = 2;
export function feeds(ctx: { sample: number }): Record<string, number> {
  return { x: helper(ctx.sample) };
}
`;

function importInChild(projectType: 'commonjs' | 'module'): { status: number | null; out: string; err: string } {
  const project = join(dir, projectType);
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `user-${projectType}`, type: projectType }));
  writeFileSync(join(project, 'calib.ts'), MODULE);
  writeFileSync(join(project, 'helper.ts'), 'export const helper = (n: number): number => n + 1;\n');
  const lib = pathToFileURL(join(REPO_ROOT, 'dist/src/runtime/import-user-module.js')).href;
  const script = `const { importUserModule } = await import(${JSON.stringify(lib)});
const m = await importUserModule(${JSON.stringify(join(project, 'calib.ts'))});
console.log(JSON.stringify({ samples: m.samples, x: m.feeds({ sample: 2 }).x }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: project, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr };
}

describe('TypeScript calibration modules imported by the compiled package', () => {
  for (const type of ['commonjs', 'module'] as const) {
    it(`load in a "type": "${type}" package, with their own .ts imports`, () => {
      const r = importInChild(type);
      expect(r.status, r.err).toBe(0);
      expect(JSON.parse(r.out)).toEqual({ samples: 2, x: 3 });
    });
  }
});
