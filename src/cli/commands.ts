import type { CliCommand } from './command.ts';
import { convertCommand } from './convert-command.ts';
import { diffCommand } from './diff-command.ts';
import { inspectCommand } from './inspect-command.ts';
import { passesCommand } from './passes-command.ts';

/**
 * Every `convert` command. The first is the default (`convert <input> -o <output>`); add new
 * subcommands (`diff`, `inspect`, …) here.
 */
export const commands: readonly CliCommand[] = [convertCommand, passesCommand, diffCommand, inspectCommand];
