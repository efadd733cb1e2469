/**
 * qarvd's version, read from its package.json. The file sits one folder above `src/` in a
 * checkout and two above `dist/src/` in the installed package, so the folders are searched
 * upwards instead of importing the JSON by a fixed relative path (a JSON import would also
 * make tsc copy package.json into dist/).
 */
import { existsSync, readFileSync } from 'node:fs';

function readVersion(): string {
  for (const up of ['../package.json', '../../package.json']) {
    const url = new URL(up, import.meta.url);
    if (!existsSync(url)) continue;
    const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'qarvd' && typeof pkg.version === 'string') return pkg.version;
  }
  throw new Error(`qarvd: cannot find its package.json above ${new URL('.', import.meta.url).pathname}`);
}

/** The version of the qarvd package (`convert --version`, the bundled plugins' version). */
export const VERSION: string = readVersion();
