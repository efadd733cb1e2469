/**
 * An ES module written in a `.js` file of a `"type": "commonjs"` package (what `npm init -y`
 * writes) fails to import with Node's bare "Cannot use import statement outside a module" (or
 * "Unexpected token 'export'"), which does not say what to change (found by a user trial with
 * a calibration module `calib.js`). {@link esmInCommonJsHint} says it.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Node's errors for `import` / `export` in a file it loads as CommonJS. */
const ESM_SYNTAX = /Cannot use import statement outside a module|Unexpected token 'export'/;

/**
 * What to do when importing `file` failed with `error` because Node read ES module syntax as
 * CommonJS: `; Node loads calib.js as CommonJS … rename it to calib.mjs, or set "type":
 * "module" in <the nearest package.json>`; '' for any other failure. The syntax may be in a
 * file `file` requires (found by review: a CommonJS calib.js requiring an ES module helper.js
 * was told to rename itself, which would break it): the hint then names that file.
 */
export function esmInCommonJsHint(file: string, error: unknown): string {
  if (!ESM_SYNTAX.test(error instanceof Error ? error.message : String(error))) return '';
  const culprit = syntaxErrorFile(error) ?? file;
  // A .mjs is always an ES module and a .cjs is meant as CommonJS: only a .js depends on the package.
  if (extname(culprit) !== '.js') return '';
  const pkg = nearestPackageJson(dirname(culprit));
  if (resolve(culprit) === resolve(file)) {
    return `; Node loads ${basename(file)} as CommonJS, and it is written as an ES module (import/export): rename it to ${basename(file, '.js')}.mjs, or set "type": "module" in ${pkg ?? 'a package.json in its folder'}`;
  }
  // Renaming either file alone breaks the require between them: say what is wrong, not a rename.
  const why = pkg ? `${pkg} does not set "type": "module"` : 'no package.json sets "type": "module"';
  return `; ${culprit}, loaded from ${basename(file)}, is written as an ES module (import/export) and Node loads it as CommonJS (${why}): write it with require/module.exports, or make it and the modules that load it ES modules`;
}

/**
 * The file a SyntaxError is in: Node puts `<file>:<line>` (a path or a file: URL), the source
 * line and a caret above the message in the stack; undefined when the stack does not start so.
 */
function syntaxErrorFile(error: unknown): string | undefined {
  const first = error instanceof SyntaxError ? /^(.+):\d+\r?\n/.exec(error.stack ?? '')?.[1] : undefined;
  if (!first) return undefined;
  try {
    return first.startsWith('file:') ? fileURLToPath(first) : first;
  } catch {
    return undefined;
  }
}

/** The package.json Node consults for `dir`'s `.js` files: the first one found upwards. */
function nearestPackageJson(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    const p = join(d, 'package.json');
    if (existsSync(p)) return p;
    if (dirname(d) === d) return undefined;
  }
}
