/**
 * `convert diff <before.onnx> <after.onnx> [--format text|md|json] [--exit-code] [--data]`:
 * what changed between two models, for a pull-request review (see `src/report/diff.ts`).
 */
import { existsSync } from 'node:fs';
import { ModelFileError } from '../graph/serde/errors.ts';
import { REPORT_FORMATS, type ReportFormat } from '../report/text.ts';
import { singleFlag } from './args.ts';
import type { CliCommand } from './command.ts';
import { DIFF_SPEC } from './specs.ts';
import { CliError } from './errors.ts';

export const diffCommand: CliCommand = {
  spec: DIFF_SPEC,
  async run(args, io) {
    const before = args.before as string;
    const after = args.after as string;
    const format = reportFormat(args.format);
    for (const p of [before, after]) if (!existsSync(p)) throw new ModelFileError(p, 'no such file');
    // Imported when the command runs, so that the other commands do not load them.
    const [{ loadModel }, { diffModels }, { formatDiff }] = await Promise.all([import('../graph/serde/io.ts'), import('../report/diff.ts'), import('../report/diff-format.ts')]);
    const diff = diffModels(loadModel(before), loadModel(after), { beforeLabel: before, afterLabel: after, data: args.data === true });
    io.out(formatDiff(diff, format));
    return args['exit-code'] === true && diff.differ ? 1 : 0;
  },
  // As diff(1): 1 means the models differ, so a CI gate must see an error (a missing or corrupt file) as something else.
  failureCode: (options) => (options['exit-code'] === true ? 2 : 1),
};

/** Parses `--format` (text when absent). */
export function reportFormat(v: unknown): ReportFormat {
  const f = singleFlag(v, '--format') ?? 'text';
  if (!(REPORT_FORMATS as readonly string[]).includes(f)) throw new CliError(`--format ${f}: expected one of ${REPORT_FORMATS.join(', ')}`);
  return f as ReportFormat;
}
