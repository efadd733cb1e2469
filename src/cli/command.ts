import type { CliIO } from './io.ts';
import type { CommandSpec } from './specs.ts';

/**
 * A `convert` subcommand: its declaration (specs.ts) and the code that runs it. Commands are
 * listed in `commands.ts`; adding one means declaring it in `specs.ts`, writing one of these
 * and adding it to that list.
 */
export interface CliCommand {
  /** What the command accepts, for the parser and for `--help`. */
  readonly spec: CommandSpec;
  /**
   * Runs the command and returns the exit code. Throw to fail: the error is printed as one
   * line, `convert: error: <message>` (with the stack under `--debug`), and the exit code is 1.
   */
  run(args: Record<string, unknown>, io: CliIO): Promise<number>;
  /**
   * The exit code of a failure of this command run with `options` (as parsed, default 1): a
   * command whose own result is an exit code (`diff --exit-code`) keeps its codes apart from errors.
   */
  failureCode?(options: Record<string, unknown>): number;
}
