/**
 * The `convert` CLI. `run(argv)` parses the arguments, runs one command and returns the exit
 * code, without exiting the process, so tests call it in-process; `bin/convert.js` calls it.
 */
import yargs from 'yargs';
import type { CliCommand } from './command.ts';
import { commands as defaultCommands } from './commands.ts';
import { formatError, UsageError } from './errors.ts';
import { type CliIO, processIO } from './io.ts';
import { VERSION } from '../version.ts';


/**
 * Runs the CLI.
 * @param argv the arguments after the program name
 * @param io where to write (defaults to the process streams)
 * @param commands the commands to offer (defaults to every command in `commands.ts`)
 * @returns the exit code: 0 on success, 1 on any error
 */
export async function run(argv: readonly string[], io: CliIO = processIO(), commands: readonly CliCommand[] = defaultCommands): Promise<number> {
  const debug = argv.includes('--debug');
  let code = 0;
  let parser = yargs([...argv])
    .scriptName('convert')
    .parserConfiguration({
      // Pass options keep their kebab-case keys and their text: resolveOptions coerces them.
      'camel-case-expansion': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'strip-aliased': true,
      'dot-notation': true,
    })
    .exitProcess(false)
    .showHelpOnFail(false)
    .option('plugin', { type: 'string', global: true, describe: 'load passes from a plugin module (.mjs/.js/.ts); repeatable' })
    .option('quiet', { alias: 'q', type: 'boolean', global: true, describe: 'print nothing but errors and requested output' })
    .option('verbose', { alias: 'v', type: 'boolean', global: true, describe: 'say more about each pass' })
    .option('debug', { type: 'boolean', global: true, describe: 'print stack traces of errors' })
    .version(VERSION)
    .help()
    .alias('help', 'h')
    .wrap(Math.min(100, process.stdout.columns || 100))
    .fail((message, error) => {
      // yargs' own usage errors come as a message; errors thrown by a command come as `error`.
      throw error ?? new UsageError(usageMessage(message));
    });
  for (const c of commands) {
    parser = parser.command({
      command: c.command,
      describe: c.describe,
      builder: c.builder,
      handler: async (args) => {
        code = await c.run(args as Record<string, unknown>, io);
      },
    });
  }
  let printed = '';
  try {
    await parser.parseAsync([...argv], {}, (_err, _args, output) => {
      printed = output ?? '';
    });
  } catch (e) {
    io.err(formatError(e, debug));
    return 1;
  }
  // Help or version text: yargs hands it to the callback instead of printing it.
  if (printed) io.out(printed.endsWith('\n') ? printed : `${printed}\n`);
  return code;
}

function usageMessage(message: string): string {
  if (/^Not enough non-option arguments/.test(message)) return 'no input model; usage: convert <input.onnx> -o <output.onnx> (see convert --help)';
  return `${message} (see convert --help)`;
}
