import { CliError } from './errors.ts';

/** A repeatable flag (`--pass`, `--plugin`) arrives as a string or an array; comma lists split when `split`. */
export function listFlag(v: unknown, flag: string, split = false): string[] {
  if (v === undefined) return [];
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw new CliError(`--${flag} needs a value`);
  return list.flatMap((x) => {
    if (typeof x !== 'string' || x.trim() === '') throw new CliError(`--${flag} needs a value`);
    return split ? x.split(',').map((s) => s.trim()).filter((s) => s !== '') : [x];
  });
}

/** A flag that may be given at most once (`-o`, `--config`). */
export function singleFlag(v: unknown, flag: string): string | undefined {
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new CliError(`${flag} was given ${v.length} times; give it once`);
  if (typeof v !== 'string' || v === '') throw new CliError(`${flag} needs a value`);
  return v;
}
