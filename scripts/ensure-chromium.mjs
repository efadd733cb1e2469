#!/usr/bin/env node
// `npm test` runs this first (pretest): the HTML report test (test/report/html.test.ts) opens
// the report in a real Chromium, found by scripts/find-chromium.mjs (CHROMIUM_PATH, else
// /usr/bin/chromium, else chromium / chromium-browser / google-chrome on PATH). On a fresh
// Debian machine without one it installs Debian's `chromium` package with apt-get (when running
// as root), so that `npm ci && npm test` is green without a separate setup step. Browsers are
// never downloaded from the internet (playwright's CDN is unreachable here): only the
// distribution's package. When it cannot install, it stops with one line naming the command to run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { DEBIAN_CHROMIUM, findChromium } from './find-chromium.mjs';

const found = findChromium();
if (found?.runs) process.exit(0);

const fail = (why) => {
  process.stderr.write(`npm test: the HTML report test needs Chromium: ${why}\n`);
  process.exit(1);
};
const orSet = 'or set CHROMIUM_PATH to a Chromium or Chrome you have';
if (found) fail(`CHROMIUM_PATH=${found.path} does not run: point it at a Chromium or Chrome binary, or unset it to let npm test find or install one`);
if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) fail(`none found, and this is not a Debian-like system: install Chromium, ${orSet}, then rerun npm test`);
if (process.getuid?.() !== 0) fail(`none found, and installing Debian's needs root: run \`sudo apt-get install -y chromium\` (${orSet}), then rerun npm test`);

process.stderr.write(`npm test: no Chromium found; installing Debian's chromium package (apt-get install chromium) for the HTML report test\n`);
// Wait for a dpkg lock held by a concurrent install instead of failing at once.
const apt = (...args) => spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
const update = apt('update', '-qq');
const install = update.status === 0 ? apt('install', '-y', '-qq', 'chromium') : update;
if (install.status !== 0 || !existsSync(DEBIAN_CHROMIUM)) fail(`none found, and apt-get could not install Debian's (exit ${install.status ?? install.signal}): run \`apt-get update && apt-get install -y chromium\` (${orSet}) and rerun npm test`);
