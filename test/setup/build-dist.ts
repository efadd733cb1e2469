// Vitest global setup: compiles dist/ (incrementally, a few seconds when nothing changed)
// before any test runs, because the tests that spawn `bin/convert.js` — as a user's shell
// would — run the compiled JavaScript, and must not test a dist/ older than the sources.
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';

export default function setup(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'pipe', encoding: 'utf8' });
  } catch (e) {
    const out = (e as { stdout?: string }).stdout ?? '';
    throw new Error(`npm run build (tsc -p tsconfig.build.json) failed, so bin/convert.js cannot be tested:\n${out}`);
  }
}
