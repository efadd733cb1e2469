/**
 * Parses a command line with yargs and runs the command it names. Imported by `run()` only
 * when a command is to run (help and version are answered without it, help.ts).
 */
import yargs from 'yargs';
import type { CliCommand } from './command.ts';
import { formatError, UsageError } from './errors.ts';
import { renderHelp } from './help.ts';
import type { CliIO } from './io.ts';
import { GLOBAL_OPTIONS, type CommandSpec } from './specs.ts';
import { VERSION } from '../version.ts';

/**
 * Parses `argv` against `commands`' declarations and runs the command it names.
 * @returns the exit code: the command's, or on any error (printed as one line to `io.err`) its failure code, 1 by default
 */
export async function parseAndRun(argv: readonly string[], io: CliIO, commands: readonly CliCommand[], width: number): Promise<number> {
  let code = 0;
  // The command yargs matched (it builds only that one), wherever it stands among the options.
  let matched: CliCommand | undefined;
  let parser = yargs([...argv])
    .scriptName('convert')
    .parserConfiguration(PARSER_CONFIGURATION)
    .exitProcess(false)
    .showHelpOnFail(false)
    // run() answers --help and --version before parsing; declared here so that strict
    // commands know them (and a spelling run() did not catch still gets the help).
    .help(false)
    .version(false)
    .fail((message, error) => {
      // yargs' own usage errors come as a message; errors thrown by a command come as `error`.
      throw error ?? new UsageError(usageMessage(message, argv, commands.map((c) => c.spec.command)));
    });
  for (const [name, o] of Object.entries(GLOBAL_OPTIONS)) parser = parser.option(name, { type: o.type, alias: o.alias, global: true, describe: o.describe });
  for (const c of commands) {
    parser = parser.command({
      command: c.spec.command,
      describe: c.spec.describe,
      builder: (y) => {
        matched = c;
        return declare(y, c.spec);
      },
      handler: async (args) => {
        if (args.help === true) io.out(renderHelp(c.spec, commands.map((x) => x.spec), width));
        else if (args.version === true) io.out(`${VERSION}\n`);
        else code = await c.run(args as Record<string, unknown>, io);
      },
    });
  }
  try {
    await parser.parseAsync([...argv]);
  } catch (e) {
    // The failed parse left no options to read (a usage error comes before the handler), and
    // argv's spellings vary (`--exit-code=true`, `--exit-code false`, `--debug` before the
    // command): the options are parsed again, leniently, as the command declares them.
    const options = leniently(argv, matched?.spec);
    io.err(formatError(e, options.debug === true));
    return matched?.failureCode?.(options) ?? 1;
  }
  return code;
}

/** How yargs reads every command line. */
const PARSER_CONFIGURATION = {
  // Pass options keep their kebab-case keys and their text: resolveOptions coerces them.
  'camel-case-expansion': false,
  'parse-numbers': false,
  'parse-positional-numbers': false,
  'strip-aliased': true,
  'dot-notation': true,
};

/** `argv`'s options as the global ones and `spec`'s are declared, without validating anything. */
function leniently(argv: readonly string[], spec: CommandSpec | undefined): Record<string, unknown> {
  let y = yargs([...argv]).parserConfiguration(PARSER_CONFIGURATION).exitProcess(false).help(false).version(false);
  for (const [name, o] of Object.entries({ ...GLOBAL_OPTIONS, ...spec?.options })) y = y.option(name, { type: o.type, alias: o.alias });
  try {
    return y.parseSync();
  } catch {
    return {};
  }
}

/** Registers a command's positionals and options with yargs. */
function declare<T>(y: import('yargs').Argv<T>, spec: CommandSpec): import('yargs').Argv<T> {
  for (const [name, describe] of Object.entries(spec.positionals)) y = y.positional(name, { type: 'string', describe });
  for (const [name, o] of Object.entries(spec.options)) y = y.option(name, { type: o.type, alias: o.alias, describe: o.describe });
  return spec.strict ? y.strict() : y;
}

/** yargs' message in the project's words; a missing argument of a subcommand gets that subcommand's usage. */
function usageMessage(message: string, argv: readonly string[], commandLines: readonly string[]): string {
  if (/^Not enough non-option arguments/.test(message)) {
    // The subcommand is the first word that is not an option (`convert -v diff a.onnx`), when it names one.
    const first = argv.find((a) => !a.startsWith('-'));
    const line = commandLines.find((c) => !c.startsWith('$0') && c.split(' ')[0] === first);
    if (line) return `missing argument; usage: convert ${line} (see convert ${line.split(' ')[0]} --help)`;
    return 'no input model; usage: convert <input.onnx> -o <output.onnx> (see convert --help)';
  }
  return `${message} (see convert --help)`;
}
