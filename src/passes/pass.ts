/**
 * The pass contract, after MLIR's pass declarations: a pass states up front its CLI name,
 * a one-line summary, its typed options (with defaults and help) and the statistics it
 * reports, so that `convert passes` can list them and the CLI can reject unknown option keys
 * before any work is done.
 */
import type { CalibrationModule } from './calibration/module.ts';
import type { Model } from '../graph/ir/model.ts';
import type { Logger } from './log.ts';
import type { SpillPlace } from '../graph/serde/spill-file.ts';
import { nearNames } from './near-names.ts';

/** The value types an option may declare. */
export type PassOptionType = 'number' | 'integer' | 'boolean' | 'string' | 'string[]' | 'enum';

/** One declared option. The key it is declared under is its kebab-case CLI name. */
export interface PassOption {
  /** How a value given as text (the CLI) or JSON is checked and coerced. */
  type: PassOptionType;
  /** Used when the option is not given; must itself be a valid value. */
  default: unknown;
  /** One line for `convert passes`. */
  help: string;
  /** The allowed values of an `enum` option. */
  choices?: readonly string[];
  /**
   * Set on a `string` option that names a file: whether the pass reads or writes it. `convert`
   * refuses a run that would write over the model it reads or over another file of the run
   * (src/api/run-files.ts).
   */
  file?: FileUse;
}

/** What a pass does with the file a path option names. */
export interface FileUse {
  access: 'read' | 'write';
  /** Suffixes of the files beside it that go with it (`.recon`: `table.json.recon`). */
  sidecars?: readonly string[];
  /** A `read` option of the same pass that may name the same file: the pass rewrites it in place. */
  rewrites?: string;
}

/** What every pass is given besides the model. */
export interface PassContext {
  /** Info, warnings and progress; silent under `--quiet`. Messages are prefixed with the pass name. */
  readonly log: Logger;
  /** True under `--verbose`/`--debug`: a pass may log more detail. */
  readonly verbose: boolean;
  /** Folder of the model file when it was loaded from one (for files a pass reads beside it). */
  readonly modelDir: string | undefined;
  /**
   * A calibration module given as an object through the library API (`quantize(…, { calib })`);
   * quantization passes use it instead of their `calib` option.
   */
  readonly calibration?: CalibrationModule;
  /**
   * True when the model is one of several graphs converted together (a transformers.js
   * folder's graphs, each written as a variant): a pass that finds nothing to do in this one
   * says so and leaves it as it is, where on a single model it would stop.
   */
  readonly partOfSet?: boolean;
  /**
   * The options given explicitly (kebab-case keys: on the command line, in a config file or
   * through the API), as opposed to those left at their default: a pass refuses an option
   * asked for that cannot apply, where the same value as a default is silently moot.
   */
  readonly given?: ReadonlySet<string>;
  /**
   * Where a quantization pass keeps the tensors it produces until the save: beside the output's
   * data file, so that the save can take the file over instead of copying them (spill-file.ts).
   * Set by a conversion of a model file that writes external data.
   */
  readonly spill?: SpillPlace;
}

/** What a pass returns. */
export interface PassResult {
  /** True when the pass changed the model. */
  modified: boolean;
  /** Values of declared statistics; statistics left out count as 0. */
  stats: Record<string, number>;
  /** Anything else a pass wants to hand to its caller (printed by nobody by default). */
  report?: unknown;
}

/**
 * A model-to-model transformation with its declaration.
 * @typeParam O the resolved options object: declared keys in camelCase (`w-bits` → `wBits`).
 */
export interface Pass<O = Record<string, unknown>> {
  /** kebab-case CLI name, unique across all registered plugins. */
  readonly name: string;
  /** One line for `convert passes`. */
  readonly summary: string;
  /** Longer text: the rules the pass applies. */
  readonly description?: string;
  /** Declared options by kebab-case key. */
  readonly options: Readonly<Record<string, PassOption>>;
  /** Declared statistics: name → help. */
  readonly statistics: Readonly<Record<string, string>>;
  /** Rewrites `model` in place with the resolved options and says what it did. */
  run(model: Model, ctx: PassContext, options: O): Promise<PassResult> | PassResult;
}

/** A pass whose option type is not known statically (registries hold these). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyPass = Pass<any>;

/** `w-bits` → `wBits`, at the type level. */
export type CamelCase<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;

/** The value type of one declared option. */
export type OptionValue<D extends PassOption> = D['type'] extends 'number' | 'integer'
  ? number
  : D['type'] extends 'boolean'
    ? boolean
    : D['type'] extends 'string'
      ? string
      : D['type'] extends 'string[]'
        ? string[]
        : D['type'] extends 'enum'
          ? D['choices'] extends readonly (infer C)[]
            ? C
            : string
          : never;

/** The resolved options object of a set of declarations: camelCase keys, typed values. */
export type OptionValues<D extends Record<string, PassOption>> = {
  [K in keyof D & string as CamelCase<K>]: OptionValue<D[K]>;
};

/** What {@link definePass} takes: a pass whose options type is derived from its declarations. */
export interface PassDefinition<D extends Record<string, PassOption>> {
  /** kebab-case CLI name, unique across all registered plugins. */
  name: string;
  /** One line for `convert passes`. */
  summary: string;
  /** Longer text: the rules the pass applies. */
  description?: string;
  /** Declared options by kebab-case key; `run` gets them resolved, in camelCase. */
  options: D;
  /** Declared statistics: name → help. */
  statistics: Record<string, string>;
  /** Rewrites `model` in place with the resolved options and says what it did. */
  run(model: Model, ctx: PassContext, options: OptionValues<D>): Promise<PassResult> | PassResult;
}

const KEBAB = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
const TYPES: readonly PassOptionType[] = ['number', 'integer', 'boolean', 'string', 'string[]', 'enum'];

/**
 * Declares a pass; the options object handed to `run` is typed from the declarations.
 * Checks the declaration now (kebab-case names, known option types, valid defaults), so a
 * malformed pass fails where it is written rather than when a user first runs it.
 */
export function definePass<const D extends Record<string, PassOption>>(def: PassDefinition<D>): Pass<OptionValues<D>> {
  const problem = checkPassShape(def);
  if (problem) throw new Error(`definePass ${String(def?.name ?? '(unnamed)')}: ${problem}`);
  return def as unknown as Pass<OptionValues<D>>;
}

/**
 * Returns what is wrong with a would-be pass object, or undefined when it is well formed.
 * Shared by {@link definePass} and the plugin loader (which cannot trust its input's type).
 */
export function checkPassShape(p: unknown): string | undefined {
  if (typeof p !== 'object' || p === null) return `is ${describe(p)}, not a pass object`;
  const pass = p as Record<string, unknown>;
  if (typeof pass.name !== 'string' || pass.name === '') return 'has no name';
  if (!KEBAB.test(pass.name)) return `name '${pass.name}' is not kebab-case (like 'my-pass')`;
  if (typeof pass.run !== 'function') return 'has no run function';
  if (typeof pass.summary !== 'string' || pass.summary === '') return 'has no summary';
  if (typeof pass.options !== 'object' || pass.options === null || Array.isArray(pass.options)) return 'has no options object (use {} for none)';
  if (typeof pass.statistics !== 'object' || pass.statistics === null || Array.isArray(pass.statistics)) {
    return 'has no statistics object (use {} for none)';
  }
  for (const [key, help] of Object.entries(pass.statistics)) {
    if (typeof help !== 'string') return `statistic ${key} needs a help string`;
  }
  for (const [key, opt] of Object.entries(pass.options as Record<string, unknown>)) {
    if (!KEBAB.test(key)) return `option key '${key}' is not kebab-case (like 'w-bits')`;
    if (typeof opt !== 'object' || opt === null) return `option ${key} is not a declaration object`;
    const o = opt as Record<string, unknown>;
    if (!TYPES.includes(o.type as PassOptionType)) return `option ${key} has type ${describe(o.type)}; expected one of ${TYPES.join(', ')}`;
    if (typeof o.help !== 'string') return `option ${key} needs a help string`;
    if (o.type === 'enum' && (!Array.isArray(o.choices) || o.choices.length === 0 || !o.choices.every((c) => typeof c === 'string'))) {
      return `enum option ${key} needs a non-empty list of string choices`;
    }
    if (!('default' in o)) return `option ${key} has no default`;
    if (o.file !== undefined) {
      const f = o.file as Record<string, unknown> | null;
      if (o.type !== 'string') return `option ${key} declares a file but has type ${String(o.type)}; a file option is a string`;
      if (typeof f !== 'object' || f === null || (f.access !== 'read' && f.access !== 'write')) return `option ${key}: file.access must be 'read' or 'write'`;
      if (f.sidecars !== undefined && !(Array.isArray(f.sidecars) && f.sidecars.every((x) => typeof x === 'string' && x !== ''))) return `option ${key}: file.sidecars must be a list of file suffixes`;
      if (f.rewrites !== undefined && (f.access !== 'write' || typeof f.rewrites !== 'string' || !(f.rewrites in (pass.options as object)))) return `option ${key}: file.rewrites must name another option of the pass, on a write option`;
    }
    try {
      coerce(pass.name, key, o as unknown as PassOption, o.default);
    } catch (e) {
      return `option ${key} has an invalid default: ${(e as Error).message}`;
    }
  }
  return undefined;
}

/** A bad option key or value; the CLI reports it as one line. */
export class PassOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PassOptionError';
  }
}

/**
 * Turns raw option values (CLI strings, config JSON) into the options object a pass gets:
 * coerces strings (`'4'` → 4, `'false'` → false, `'a,b'` → ['a', 'b']), fills in defaults,
 * and renames keys to camelCase. Throws {@link PassOptionError} for an unknown key (listing
 * the valid ones) or a bad value (naming the option, the expected type and the value).
 */
export function resolveOptions<O>(pass: Pass<O>, raw: Record<string, unknown> = {}): O {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new PassOptionError(`pass ${pass.name}: options must be an object of key → value, got ${describe(raw)}`);
  }
  const declared = Object.keys(pass.options);
  for (const key of Object.keys(raw)) {
    if (!(key in pass.options)) {
      const valid = declared.length ? `valid keys: ${declared.join(', ')}` : 'this pass takes no options';
      const close = nearNames(key, declared);
      throw new PassOptionError(`pass ${pass.name}: unknown option '${key}'${close.length ? ` (did you mean ${close.join(' or ')}?)` : ''}; ${valid}`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, decl] of Object.entries(pass.options)) {
    const given = raw[key];
    out[camelCase(key)] = coerce(pass.name, key, decl, given === undefined ? decl.default : given);
  }
  return out as O;
}

/** `w-bits` → `wBits`. */
export function camelCase(key: string): string {
  return key.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function coerce(passName: string, key: string, decl: PassOption, v: unknown): unknown {
  const bad = (expected: string): never => {
    // A bare `--pass.key` flag arrives as `true`: say the value is missing rather than wrong.
    const shown = v === true && decl.type !== 'boolean' ? 'no value' : describe(v);
    throw new PassOptionError(`pass ${passName}: option ${key} expects ${expected}, got ${shown}`);
  };
  // A repeated CLI flag arrives as an array; only list options take more than one value.
  if (Array.isArray(v) && decl.type !== 'string[]') {
    bad(`a single ${decl.type === 'enum' ? 'choice' : decl.type} value`);
  }
  switch (decl.type) {
    case 'number':
    case 'integer': {
      const what = decl.type === 'integer' ? 'an integer' : 'a number';
      let n: number;
      if (typeof v === 'number') n = v;
      else if (typeof v === 'string' && v.trim() !== '') n = Number(v.trim());
      else return bad(what);
      if (!Number.isFinite(n) || (decl.type === 'integer' && !Number.isInteger(n))) return bad(what);
      return n;
    }
    case 'boolean': {
      if (typeof v === 'boolean') return v;
      const s = typeof v === 'string' ? v.trim().toLowerCase() : undefined;
      if (s === 'true' || s === '1') return true;
      if (s === 'false' || s === '0') return false;
      return bad('a boolean (true or false)');
    }
    case 'string':
      return typeof v === 'string' ? v : bad('a string');
    case 'string[]': {
      const parts = Array.isArray(v) ? v : [v];
      const out: string[] = [];
      for (const p of parts) {
        if (typeof p !== 'string') return bad('a list of strings (comma-separated on the command line)');
        out.push(...p.split(',').map((s) => s.trim()).filter((s) => s !== ''));
      }
      return out;
    }
    case 'enum': {
      const choices = decl.choices ?? [];
      // The CLI parser turns `--q-arvd.w-bits 4` into the number 4, and a config file may say
      // `false` for an enum whose choices include 'false' (`dual-scale`): choices are strings.
      const s = typeof v === 'number' || typeof v === 'boolean' ? String(v) : v;
      return typeof s === 'string' && choices.includes(s) ? s : bad(`one of ${choices.join(', ')}`);
    }
  }
}

/** A short, quoted rendering of a value for messages. */
export function describe(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (typeof v === 'object') {
    try {
      return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v);
    } catch {
      return String(v);
    }
  }
  return String(v);
}
