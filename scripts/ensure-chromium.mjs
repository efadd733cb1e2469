#!/usr/bin/env node
// `npm test` runs this first (pretest): the HTML report test (test/report/html.test.ts) opens
// the report in a real Chromium at /usr/bin/chromium. On a fresh Debian/Ubuntu machine without
// one it installs Debian's `chromium` package with apt-get (when running as root), so that
// `npm ci && npm test` is green without a separate setup step. Browsers are never downloaded
// from the internet (playwright's CDN is unreachable here): only the distribution's package.
// When it cannot install, it stops with one line naming the command to run.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CHROMIUM = '/usr/bin/chromium';
if (existsSync(CHROMIUM)) process.exit(0);

const fail = (why) => {
  process.stderr.write(`npm test: the HTML report test needs Chromium at ${CHROMIUM} and ${why}\n`);
  process.exit(1);
};
if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) fail('this is not a Debian-like system: install Chromium so that /usr/bin/chromium runs it, then rerun npm test');
if (process.getuid?.() !== 0) fail('installing it needs root: run `sudo apt-get install -y chromium`, then rerun npm test');

process.stderr.write(`npm test: ${CHROMIUM} is missing; installing Debian's chromium package (apt-get install chromium) for the HTML report test\n`);
// Wait for a dpkg lock held by a concurrent install instead of failing at once.
const apt = (...args) => spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
const update = apt('update', '-qq');
const install = update.status === 0 ? apt('install', '-y', '-qq', 'chromium') : update;
if (install.status !== 0 || !existsSync(CHROMIUM)) fail(`apt-get could not install it (exit ${install.status ?? install.signal}): run \`apt-get update && apt-get install -y chromium\` and rerun npm test`);
