// npm test's pretest (scripts/ensure-chromium.mjs) and the browser the HTML report test uses
// (scripts/find-chromium.mjs). Installing Debian's package on a machine without Chromium was
// checked by hand in a mount namespace that hides it (see docs/packaging.md); here: the
// CHROMIUM_PATH override and the order of the search, which need no root and change nothing.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEBIAN_CHROMIUM, findChromium } from '../../scripts/find-chromium.mjs';
import { removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('ensure-chromium');
afterAll(() => removeDir(dir));
const fake = join(dir, 'chromium-browser');
writeFileSync(fake, '#!/bin/sh\nexit 0\n');
chmodSync(fake, 0o755);

const ensure = (env: Record<string, string>) => spawnSync(process.execPath, [resolve('scripts/ensure-chromium.mjs')], { env: { ...process.env, ...env }, encoding: 'utf8' });

describe('scripts/ensure-chromium.mjs and find-chromium.mjs', () => {
  it('a CHROMIUM_PATH that does not run stops npm test with one line naming it, and installs nothing', () => {
    const r = ensure({ CHROMIUM_PATH: join(dir, 'nowhere', 'chromium') });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([`npm test: the HTML report test needs Chromium: CHROMIUM_PATH=${join(dir, 'nowhere', 'chromium')} does not run: point it at a Chromium or Chrome binary, or unset it to let npm test find or install one`]);
  });

  it('a CHROMIUM_PATH that runs is used as it is, silently', () => {
    const r = ensure({ CHROMIUM_PATH: fake });
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(findChromium({ CHROMIUM_PATH: fake })).toEqual({ path: fake, from: 'CHROMIUM_PATH', runs: true });
  });

  it('without CHROMIUM_PATH: Debian\'s /usr/bin/chromium first, then a Chromium-named browser on PATH, else none', () => {
    const expected = existsSync(DEBIAN_CHROMIUM) ? { path: DEBIAN_CHROMIUM, from: 'default', runs: true } : { path: fake, from: 'PATH', runs: true };
    expect(findChromium({ PATH: `${join(dir, 'empty')}:${dir}` })).toEqual(expected);
    if (!existsSync(DEBIAN_CHROMIUM)) expect(findChromium({ PATH: join(dir, 'empty') })).toBeUndefined();
  });
});
