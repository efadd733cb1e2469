/**
 * Turns a config file and the command line into the list of pass steps to run.
 * Config passes come first, then `--pass` entries in the order given; options set on the
 * command line (`--<pass>.<key> value`) override the config's for every step of that pass.
 * Paths in a config file (plugins, and pass options that name files) are relative to its
 * folder, as a config file is written beside what it names; paths on the command line are
 * relative to the current folder.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { checkReadSource } from '../api/run-files.ts';
import type { PassStep } from '../passes/manager.ts';
import { nearNames } from '../passes/near-names.ts';
import { type AnyPass, describe, resolveOptions } from '../passes/pass.ts';
import type { PassRegistry } from '../passes/registry.ts';
import { CliError } from './errors.ts';

/** One pass of a config file. */
export interface ConfigPass {
  name: string;
  options: Record<string, unknown>;
}

/** A parsed `convert.config.json`. */
export interface ConvertConfig {
  /** The file, as given. */
  file: string;
  passes: ConfigPass[];
  /** Plugin modules, resolved against the config file's folder. */
  plugins: string[];
}

const CONFIG_KEYS = ['passes', 'plugins'];

/**
 * Reads `{ "passes": [{ "name": ..., "options": {...} } | "name", ...], "plugins": ["./p.mjs"] }`.
 * Throws {@link CliError} naming the file for anything malformed.
 */
export function readConfig(file: string): ConvertConfig {
  const fail = (what: string): never => {
    throw new CliError(`${file}: ${what}`);
  };
  if (!existsSync(file)) fail('no such file');
  checkReadSource(file, file);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return fail(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return fail('expected an object like { "passes": [{ "name": "dce" }] }');
  const root = json as Record<string, unknown>;
  for (const k of Object.keys(root)) if (!CONFIG_KEYS.includes(k)) fail(`unknown key '${k}'; valid keys: ${CONFIG_KEYS.join(', ')}`);
  const passes: ConfigPass[] = [];
  const rawPasses = root.passes ?? [];
  if (!Array.isArray(rawPasses)) fail(`"passes" must be an array, got ${describe(rawPasses)}`);
  (rawPasses as unknown[]).forEach((entry, i) => {
    if (typeof entry === 'string') {
      passes.push({ name: entry, options: {} });
      return;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail(`passes[${i}] must be a pass name or { "name": ..., "options": {...} }`);
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) if (k !== 'name' && k !== 'options') fail(`passes[${i}]: unknown key '${k}'; valid keys: name, options`);
    if (typeof e.name !== 'string' || e.name === '') fail(`passes[${i}] has no "name"`);
    const options = e.options ?? {};
    if (typeof options !== 'object' || options === null || Array.isArray(options)) fail(`passes[${i}] (${e.name}): "options" must be an object`);
    passes.push({ name: e.name as string, options: options as Record<string, unknown> });
  });
  const rawPlugins = root.plugins ?? [];
  if (!Array.isArray(rawPlugins) || !rawPlugins.every((p) => typeof p === 'string')) fail('"plugins" must be an array of module paths');
  const plugins = (rawPlugins as string[]).map((p) => resolve(dirname(resolve(file)), p));
  return { file, passes, plugins };
}

/**
 * Collects `--<pass>.<key> value` options from parsed arguments. `known` are the command's
 * own option names; any other key must be a registered pass name with dotted keys.
 */
export function passOptionsFromArgs(args: Record<string, unknown>, known: ReadonlySet<string>, registry: PassRegistry): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  for (const [key, value] of Object.entries(args)) {
    if (known.has(key)) continue;
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    if (!registry.has(key)) {
      const passes = registry.names().join(', ');
      if (isObject) throw new CliError(`--${key}.${Object.keys(value)[0]}: there is no pass named ${key}; known passes: ${passes}`);
      // yargs lists camelCase twins of every option; a user types the kebab-case ones.
      const close = nearNames(key, [...known].filter((k) => k.length > 1 && k === k.toLowerCase()));
      const hint = close.length ? ` (did you mean ${close.map((k) => `--${k}`).join(' or ')}?)` : '';
      throw new CliError(`unknown option ${key.length === 1 ? '-' : '--'}${key}${hint}; see convert --help for the options, and write pass options as --<pass>.<key> <value> (passes: ${passes})`);
    }
    if (!isObject) throw new CliError(`--${key} needs a key: write --${key}.<key> <value> (see convert passes ${key})`);
    out.set(key, value as Record<string, unknown>);
  }
  return out;
}

/**
 * Builds the steps: config passes, then CLI passes; CLI options override config options.
 * Validates every pass name and option now, before any model is loaded.
 */
export function buildSteps(
  registry: PassRegistry,
  configPasses: readonly ConfigPass[],
  cliPasses: readonly string[],
  cliOptions: ReadonlyMap<string, Record<string, unknown>>,
  configFile?: string,
): PassStep[] {
  // A pass in both lists would run twice (a quantization pass then fails on its own output, after calibrating).
  const twice = configPasses.findIndex((p) => cliPasses.includes(p.name));
  if (twice >= 0) {
    const name = configPasses[twice]!.name;
    throw new CliError(`pass ${name} is listed in ${configFile} (passes[${twice}]) and in --pass, so it would run twice; drop one (options on the command line, --${name}.<key>, already override the config's)`);
  }
  const configDir = configFile === undefined ? undefined : dirname(resolve(configFile));
  const entries = [...configPasses.map((p, i) => ({ ...p, from: `${configFile}: passes[${i}]: `, dir: configDir })), ...cliPasses.map((name) => ({ name, options: {}, from: '', dir: undefined }))];
  const listed = new Set(entries.map((e) => e.name));
  for (const name of cliOptions.keys()) {
    if (!listed.has(name)) {
      const list = listed.size ? `the passes to run are ${[...listed].join(', ')}` : 'no pass is to run';
      throw new CliError(`options were given for pass ${name}, but ${list}; add --pass ${name}`);
    }
  }
  return entries.map((e) => {
    let step: PassStep;
    try {
      const own = e.dir === undefined ? e.options : relativeTo(e.dir, registry.get(e.name).pass, e.options);
      step = registry.step(e.name, { ...own, ...cliOptions.get(e.name) });
      resolveOptions(step.pass, step.options);
    } catch (err) {
      throw new CliError(`${e.from}${(err as Error).message}`, { cause: err });
    }
    return step;
  });
}

/** `options` with every relative path of a file option (`file` in its declaration) resolved against `dir`. */
function relativeTo(dir: string, pass: AnyPass, options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    const names = pass.options[key]?.file !== undefined && typeof value === 'string' && value !== '' && !isAbsolute(value);
    out[key] = names ? resolve(dir, value as string) : value;
  }
  return out;
}
