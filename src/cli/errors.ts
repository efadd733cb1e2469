/**
 * How the CLI reports failures: one line, `convert: error: <what>`, naming the file or pass
 * concerned. Stack traces only under `--debug`.
 */
import { ModelFileError } from '../graph/serde/errors.ts';
import { VerifyError } from '../graph/verify.ts';
import { InvalidInputError, PassFailure } from '../passes/manager.ts';
import { PassOptionError } from '../passes/pass.ts';
import { PluginError } from '../passes/plugin.ts';
import { UnknownPassError } from '../passes/registry.ts';

/** A mistake in how the CLI was called (usage, paths, config); reported as one line. */
export class CliError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CliError';
  }
}

/** yargs' own complaint about the command line (missing positional, unknown argument). */
export class UsageError extends CliError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const EXPECTED = [CliError, ModelFileError, PluginError, PassOptionError, UnknownPassError, PassFailure, InvalidInputError, VerifyError];

/** True for errors that describe the user's input rather than a bug in this tool. */
export function isExpected(e: unknown): boolean {
  if (EXPECTED.some((c) => e instanceof c)) return true;
  // Errors from the file system (ENOENT, EACCES, ENOSPC, …) name the path in their message.
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

/**
 * The text to print for an error: `convert: error: <message on one line>\n`, followed under
 * `debug` by the stack traces of the error and its causes. An unexpected error (a bug) gets a
 * second line pointing at `--debug`.
 */
export function formatError(e: unknown, debug: boolean): string {
  const message = withoutTempNames(e instanceof Error ? e.message : String(e));
  let text = `convert: error: ${oneLine(message)}\n`;
  if (debug) {
    for (let c: unknown = e, depth = 0; c !== undefined && depth < 8; c = (c as { cause?: unknown }).cause, depth++) {
      text += `${depth ? 'caused by: ' : ''}${c instanceof Error ? c.stack ?? c.message : String(c)}\n`;
      if (!(c instanceof Error)) break;
    }
  } else if (!isExpected(e)) {
    text += 'convert: this looks like a bug in convert or a plugin; rerun with --debug for the stack trace\n';
  }
  return text;
}

/** Collapses a multi-line message (verifier listings, protobuf errors) onto one line. */
export function oneLine(s: string): string {
  return s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('; ');
}

/**
 * Names the user's file instead of the temporary one written before the rename
 * (`out.onnx.1234.1796395860837.3f9a0c2e.tmp`, `report.json.1234.tmp`): a file-system error from an
 * atomic write would otherwise name a file the user never asked for.
 */
export function withoutTempNames(message: string): string {
  return message.replace(/(\S+?)\.\d+(?:\.\d+)?(?:\.[0-9a-f]{8})?\.tmp\b/g, '$1');
}
