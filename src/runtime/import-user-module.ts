/**
 * Imports a user's module by path: a plugin (`--plugin`) or a calibration module (`calib`).
 * The package runs compiled JavaScript, so Node cannot import a `.ts` file by itself (before
 * Node 22.18's type stripping); for one, tsx imports it when the user has tsx installed, and
 * the error otherwise says how to make it loadable.
 *
 * tsx's `tsImport` is used rather than its global `register()`: registered hooks load a `.ts`
 * file of a `"type": "commonjs"` package (what `npm init -y` writes) as CommonJS, and an ES
 * module's syntax in it then fails inside Node ("Cannot require() ES Module … not yet fully
 * loaded"); `tsImport` compiles the file, and what it imports, as the ES module it is written as.
 */
import { extname } from 'node:path';
import { pathToFileURL } from 'node:url';

const TS = new Set(['.ts', '.mts', '.cts']);

interface TsxApi {
  tsImport?: (specifier: string, parent: string) => Promise<Record<string, unknown>>;
  register: () => unknown;
}

/** Imports `file` (an absolute path); `.ts` files through tsx when Node cannot strip types. */
export async function importUserModule(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (e) {
    if (!TS.has(extname(file)) || (e as { code?: unknown })?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw e;
  }
  const api = await tsxApi(file);
  if (api.tsImport) return esNamespace(await api.tsImport(url, import.meta.url));
  // tsx before 4.8 has no tsImport: its global hooks (ES module packages load this way).
  api.register();
  // Node remembers the failed import of `url`; a query makes the retry a fresh module.
  return (await import(`${url}?tsx`)) as Record<string, unknown>;
}

/**
 * The module's exports as an ES module namespace. In a `"type": "commonjs"` package tsx compiles
 * the file to CommonJS, and what the import returns has the whole `module.exports` as its
 * `default` (marked `__esModule`, with the ES module's `default` export inside it): unwrapped,
 * `export default { … }` (a plugin) is `default` again, as in an ES module package.
 */
function esNamespace(m: Record<string, unknown>): Record<string, unknown> {
  const inner = m.default as Record<string, unknown> | undefined;
  return inner !== null && typeof inner === 'object' && (inner as { __esModule?: unknown }).__esModule === true ? inner : m;
}

async function tsxApi(file: string): Promise<TsxApi> {
  try {
    return (await import('tsx/esm/api')) as TsxApi;
  } catch {
    throw new Error(
      `${file} is TypeScript, and this Node (${process.version}) cannot import .ts files: install tsx beside qarvd (npm install --save-dev tsx), use Node >= 22.18, or compile it to .mjs`,
    );
  }
}
