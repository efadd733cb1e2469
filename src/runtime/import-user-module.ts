/**
 * Imports a user's module by path: a plugin (`--plugin`) or a calibration module (`calib`).
 * The package runs compiled JavaScript, so Node cannot import a `.ts` file by itself (before
 * Node 22.18's type stripping); for one, tsx's loader is registered on first need when the
 * user has tsx installed, and the error otherwise says how to make it loadable.
 */
import { extname } from 'node:path';
import { pathToFileURL } from 'node:url';

const TS = new Set(['.ts', '.mts', '.cts']);
let tsxRegistered = false;

/** Imports `file` (an absolute path); `.ts` files through tsx when Node cannot strip types. */
export async function importUserModule(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (e) {
    if (!TS.has(extname(file)) || (e as { code?: unknown })?.code !== 'ERR_UNKNOWN_FILE_EXTENSION' || tsxRegistered) throw e;
  }
  await registerTsx(file);
  // Node remembers the failed import of `url`; a query makes the retry a fresh module.
  return (await import(`${url}?tsx`)) as Record<string, unknown>;
}

async function registerTsx(file: string): Promise<void> {
  let api: { register: () => unknown };
  try {
    api = (await import('tsx/esm/api')) as { register: () => unknown };
  } catch {
    throw new Error(
      `${file} is TypeScript, and this Node (${process.version}) cannot import .ts files: install tsx beside qarvd (npm install --save-dev tsx), use Node >= 22.18, or compile it to .mjs`,
    );
  }
  api.register();
  tsxRegistered = true;
}
