/**
 * An ES module written in a `.js` file of a `"type": "commonjs"` package (what `npm init -y`
 * writes) fails to import with Node's bare "Cannot use import statement outside a module" (or
 * "Unexpected token 'export'"), which does not say what to change (found by a user trial with
 * a calibration module `calib.js`). {@link esmInCommonJsHint} says it.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';

/** Node's errors for `import` / `export` in a file it loads as CommonJS. */
const ESM_SYNTAX = /Cannot use import statement outside a module|Unexpected token 'export'/;

/**
 * What to do when importing `file` failed with `error` because Node read its ES module syntax
 * as CommonJS: `; rename it to calib.mjs, or set "type": "module" in <the nearest package.json>`;
 * '' for any other failure.
 */
export function esmInCommonJsHint(file: string, error: unknown): string {
  // A .mjs is always an ES module and a .cjs is meant as CommonJS: only a .js depends on the package.
  if (extname(file) !== '.js' || !ESM_SYNTAX.test(error instanceof Error ? error.message : String(error))) return '';
  const pkg = nearestPackageJson(dirname(file));
  return `; Node loads ${basename(file)} as CommonJS, and it is written as an ES module (import/export): rename it to ${basename(file, '.js')}.mjs, or set "type": "module" in ${pkg ?? 'a package.json in its folder'}`;
}

/** The package.json Node consults for `dir`'s `.js` files: the first one found upwards. */
function nearestPackageJson(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    const p = join(d, 'package.json');
    if (existsSync(p)) return p;
    if (dirname(d) === d) return undefined;
  }
}
