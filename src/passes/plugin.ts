/**
 * Plugins, after rollup's: a plugin is a named object, here a bundle of passes. A plugin
 * module's default export is `{ name, version, passes }`; the built-in passes ship as the
 * plugin `builtin` and are registered the same way as third-party ones.
 */
import { existsSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { esmInCommonJsHint } from '../runtime/esm-in-commonjs.ts';
import { importUserModule } from '../runtime/import-user-module.ts';
import { type AnyPass, checkPassShape, describe } from './pass.ts';

/** What a plugin module exports by default. */
export interface Plugin {
  /** Shown in `convert passes` and in failure messages (`pass x (plugin <name>)`). */
  readonly name: string;
  /** Shown in `convert passes`. */
  readonly version: string;
  /** The passes it offers; their names must be unique among all registered plugins. */
  readonly passes: readonly AnyPass[];
}

/** Identity helper that types a plugin object. */
export function definePlugin(plugin: Plugin): Plugin {
  return plugin;
}

/** A plugin that cannot be loaded or is malformed; the message names the file. */
export class PluginError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PluginError';
  }
}

/** File extensions `loadPluginModule` imports (`.ts` through tsx when installed, see `importUserModule`). */
export const PLUGIN_EXTENSIONS: readonly string[] = ['.mjs', '.js', '.cjs', '.ts', '.mts'];

/**
 * Checks that `value` is a well-formed plugin and returns it typed.
 * @param source where it came from (a file name), for messages
 */
export function validatePlugin(value: unknown, source: string): Plugin {
  const fail = (what: string): never => {
    throw new PluginError(`plugin ${source}: ${what}`);
  };
  if (typeof value !== 'object' || value === null) return fail(`the default export is ${describe(value)}, not { name, version, passes }`);
  const p = value as Record<string, unknown>;
  if (typeof p.name !== 'string' || p.name === '') fail('the default export has no name (expected { name, version, passes })');
  if (typeof p.version !== 'string') fail(`plugin '${p.name}' has no version string`);
  if (!Array.isArray(p.passes)) fail(`plugin '${p.name}' has no passes array`);
  const seen = new Set<string>();
  (p.passes as unknown[]).forEach((pass, i) => {
    const problem = checkPassShape(pass);
    const label = typeof (pass as { name?: unknown })?.name === 'string' ? `pass ${(pass as { name: string }).name}` : `passes[${i}]`;
    if (problem) fail(`${label} ${problem}`);
    const name = (pass as AnyPass).name;
    if (seen.has(name)) fail(`pass ${name} is listed twice`);
    seen.add(name);
  });
  return value as Plugin;
}

/**
 * Imports a plugin module (path relative to `cwd`) and validates its default export.
 * Throws {@link PluginError} naming the file for every failure.
 */
export async function loadPluginModule(path: string, cwd: string = process.cwd()): Promise<Plugin> {
  const file = resolve(cwd, path);
  if (!existsSync(file)) throw new PluginError(`plugin ${path}: no such file`);
  if (!statSync(file).isFile()) throw new PluginError(`plugin ${path}: not a file`);
  const ext = extname(file);
  if (!PLUGIN_EXTENSIONS.includes(ext)) {
    throw new PluginError(`plugin ${path}: cannot load a '${ext || '(no extension)'}' file; use one of ${PLUGIN_EXTENSIONS.join(', ')}`);
  }
  let mod: Record<string, unknown>;
  try {
    mod = await importUserModule(file);
  } catch (e) {
    const msg = (e as Error)?.message ?? String(e);
    throw new PluginError(`plugin ${path}: failed to import: ${firstLine(msg)}${esmInCommonJsHint(file, e)}`, { cause: e });
  }
  if (!('default' in mod) || mod.default === undefined) {
    const named = Object.keys(mod);
    const hint = named.length ? ` (it exports ${named.join(', ')})` : '';
    throw new PluginError(`plugin ${path}: no default export${hint}; export default { name, version, passes }`);
  }
  return validatePlugin(mod.default, path);
}

function firstLine(s: string): string {
  return s.split('\n', 1)[0] ?? s;
}
