// Where the HTML report test's Chromium is: shared by scripts/ensure-chromium.mjs (npm test's
// pretest, which installs Debian's package when none is found) and test/report/html.test.ts,
// so that the two always agree on the browser.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** The binary Debian's `chromium` package installs, which ensure-chromium.mjs can install. */
export const DEBIAN_CHROMIUM = '/usr/bin/chromium';
/** Names a Chromium-based browser has on PATH (Debian, Ubuntu, Google's packages). */
const NAMES = ['chromium', 'chromium-browser', 'google-chrome-stable', 'google-chrome'];

const runnable = (path) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * The browser to use: `CHROMIUM_PATH` when set (returned even when it does not run, so that the
 * caller can name it), else /usr/bin/chromium, else the first of chromium, chromium-browser,
 * google-chrome-stable, google-chrome on PATH; undefined when there is none.
 */
export function findChromium(env = process.env) {
  if (env.CHROMIUM_PATH) return { path: env.CHROMIUM_PATH, from: 'CHROMIUM_PATH', runs: runnable(env.CHROMIUM_PATH) };
  if (runnable(DEBIAN_CHROMIUM)) return { path: DEBIAN_CHROMIUM, from: 'default', runs: true };
  for (const dir of (env.PATH ?? '').split(delimiter).filter(Boolean)) {
    for (const name of NAMES) if (runnable(join(dir, name))) return { path: join(dir, name), from: 'PATH', runs: true };
  }
  return undefined;
}
