/**
 * `convert --help` and `convert --version` without the argument parser: which command the
 * help is asked for, and its text rendered from the declarations in specs.ts. Loading yargs
 * alone took about as long as starting Node (bench: `npm run bench -- startup`), so `run()`
 * answers these before importing it.
 */
import { type CommandSpec, GLOBAL_OPTIONS, type OptionSpec } from './specs.ts';

/** What the command line asks for instead of running a command. */
export type HelpRequest = { kind: 'help'; command: CommandSpec } | { kind: 'version' };

/**
 * The help or version request in `argv`, or undefined when a command is to run. As yargs
 * reads them: `--help`, `-h` (also inside a cluster of short flags such as `-qh`) or
 * `--version` anywhere before `--`; the help is for the subcommand named by the first
 * positional argument, else for the default command (`specs[0]`).
 */
export function helpRequest(argv: readonly string[], specs: readonly CommandSpec[]): HelpRequest | undefined {
  let help = false;
  let version = false;
  let first: string | undefined;
  const options = specs.flatMap((s) => Object.entries({ ...GLOBAL_OPTIONS, ...s.options }));
  const booleanFlags = new Set(options.filter(([, o]) => o.type === 'boolean').map(([name]) => name));
  const shortWithValue = new Set(options.filter(([, o]) => o.type === 'string' && o.alias).map(([, o]) => `-${o.alias}`));
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === '--help' || a === '--help=true') help = true;
    else if (a === '--version' || a === '--version=true') version = true;
    else if (/^-[a-zA-Z]+$/.test(a)) {
      if (a.includes('h')) help = true;
      // `-o out.onnx`: a short string option takes the next argument as its value.
      if (shortWithValue.has(a) && takesNext(argv[i + 1])) i++;
    } else if (a.startsWith('--') && !a.includes('=')) {
      // An option that is not a known boolean flag (`--pass dce`, `--q-arvd.w-bits 4`) takes the next argument.
      const name = a.slice(2);
      if (!booleanFlags.has(name) && !name.startsWith('no-') && takesNext(argv[i + 1])) i++;
    } else if (!a.startsWith('-') && first === undefined) first = a;
  }
  if (help) return { kind: 'help', command: specs.find((s) => first !== undefined && commandName(s) === first) ?? specs[0]! };
  if (version) return { kind: 'version' };
  return undefined;
}

/** True when an option's next argument is its value rather than another option. */
function takesNext(next: string | undefined): boolean {
  return next !== undefined && !next.startsWith('-');
}

/** The name a subcommand is called by (`passes` of `passes [name]`); `$0` for the default command. */
function commandName(spec: CommandSpec): string {
  return spec.command.split(' ')[0]!;
}

/**
 * The help text of `spec`: usage, description, (for the default command) the list of
 * commands, positionals, options with their types and aliases, examples and the epilogue,
 * wrapped to `width` columns. `program` replaces `$0`.
 */
export function renderHelp(spec: CommandSpec, specs: readonly CommandSpec[], width: number, program = 'convert'): string {
  const p = (s: string) => s.replaceAll('$0', program);
  const out: string[] = [];
  spec.usage.forEach((u, i) => out.push(`${i === 0 ? 'Usage: ' : '       '}${p(u)}`));
  out.push('', ...wrap(spec.describe, width));
  const section = (title: string, rows: [string, string][]) => {
    if (rows.length === 0) return;
    out.push('', `${title}:`, ...table(rows, width));
  };
  if (commandName(spec) === '$0') {
    section('Commands', specs.map((s) => [p(commandName(s) === '$0' ? s.command : `$0 ${s.command}`), commandName(s) === '$0' ? `${s.describe} [default]` : s.describe]));
  }
  section('Positionals', Object.entries(spec.positionals).map(([name, describe]) => [name, `${describe} [string]`]));
  section('Options', Object.entries({ ...GLOBAL_OPTIONS, ...spec.options }).map(([name, o]) => optionRow(name, o)));
  section('Examples', spec.examples.map(([command, meaning]) => [p(command), meaning]));
  if (spec.epilogue) out.push('', ...wrap(spec.epilogue, width));
  return `${out.join('\n')}\n`;
}

function optionRow(name: string, o: OptionSpec): [string, string] {
  return [`${o.alias ? `-${o.alias}, ` : '    '}--${name}`, `${o.describe} [${o.type}]`];
}

/** Two columns, the second wrapped beside the first; a first column wider than a third of the width gets the text on the lines below it. */
function table(rows: [string, string][], width: number): string[] {
  const left = Math.min(Math.max(...rows.map(([l]) => l.length)), Math.floor(width / 3));
  const lines: string[] = [];
  for (const [l, r] of rows) {
    const text = wrap(r, width - left - 4);
    if (l.length > left) lines.push(`  ${l}`, ...text.map((t) => `  ${' '.repeat(left)}  ${t}`));
    else lines.push(...text.map((t, i) => `  ${(i === 0 ? l : '').padEnd(left)}  ${t}`));
  }
  return lines;
}

/** Words of `text` in lines of at most `width` characters (a longer word gets a line of its own). */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}
