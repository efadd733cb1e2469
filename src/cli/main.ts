/**
 * The `convert` CLI. `run(argv)` parses the arguments, runs one command and returns the exit
 * code, without exiting the process, so tests call it in-process; `bin/convert.js` calls it.
 *
 * `--help` and `--version` are answered from the commands' declarations (specs.ts) before
 * anything else is imported: the parser (yargs) and the commands' code load only when a
 * command runs, so that `convert --help` starts in little more than Node's own time.
 */
import type { CliCommand } from './command.ts';
import { helpRequest, renderHelp } from './help.ts';
import { type CliIO, processIO } from './io.ts';
import { COMMAND_SPECS } from './specs.ts';
import { VERSION } from '../version.ts';

/**
 * Runs the CLI.
 * @param argv the arguments after the program name
 * @param io where to write (defaults to the process streams)
 * @param commands the commands to offer (defaults to every command in `commands.ts`)
 * @returns the exit code: 0 on success, 1 on any error
 */
export async function run(argv: readonly string[], io: CliIO = processIO(), commands?: readonly CliCommand[]): Promise<number> {
  const specs = commands?.map((c) => c.spec) ?? COMMAND_SPECS;
  const width = Math.min(100, process.stdout.columns || 100);
  const asked = helpRequest(argv, specs);
  if (asked?.kind === 'version') {
    io.out(`${VERSION}\n`);
    return 0;
  }
  if (asked) {
    io.out(renderHelp(asked.command, specs, width));
    return 0;
  }
  const [{ parseAndRun }, defaults, { guardExit }] = await Promise.all([import('./parse.ts'), commands ? undefined : import('./commands.ts'), import('./exit-guard.ts')]);
  // A pass that ends the process, or never lets the run finish, still gets one line.
  const disarm = guardExit((t) => io.err(t));
  try {
    return await parseAndRun(argv, io, commands ?? defaults!.commands, width);
  } finally {
    disarm();
  }
}
