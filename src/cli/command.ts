import type { Argv } from 'yargs';
import type { CliIO } from './io.ts';

/**
 * A `convert` subcommand. Commands are listed in `commands.ts`; `main.ts` registers each
 * with yargs, so adding `convert diff` or `convert inspect` means writing one of these and
 * adding it to that list.
 */
export interface CliCommand {
  /** The yargs command string: `$0 <input>` (the default command), `passes [name]`, `diff <a> <b>`. */
  readonly command: string;
  /** One line for `convert --help`. */
  readonly describe: string;
  /** Declares positionals, options, usage and examples. */
  builder(y: Argv): Argv;
  /**
   * Runs the command and returns the exit code. Throw to fail: the error is printed as one
   * line, `convert: error: <message>` (with the stack under `--debug`), and the exit code is 1.
   */
  run(args: Record<string, unknown>, io: CliIO): Promise<number>;
}
