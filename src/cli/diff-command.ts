/**
 * `convert diff <before.onnx> <after.onnx> [--format text|md|json] [--exit-code] [--data]`:
 * what changed between two models, for a pull-request review (see `src/report/diff.ts`).
 */
import { existsSync } from 'node:fs';
import { ModelFileError } from '../graph/serde/errors.ts';
import { REPORT_FORMATS, type ReportFormat } from '../report/text.ts';
import { singleFlag } from './args.ts';
import type { CliCommand } from './command.ts';
import { CliError } from './errors.ts';

export const diffCommand: CliCommand = {
  command: 'diff <before> <after>',
  describe: 'Show what changed between two models (op counts, inputs, initializers, rewritten layers)',
  builder: (y) =>
    y
      .usage('Usage: $0 diff <before.onnx> <after.onnx> [--format text|md|json] [--exit-code] [--data]')
      .positional('before', { type: 'string', describe: 'the original model' })
      .positional('after', { type: 'string', describe: 'the changed model' })
      .option('format', { type: 'string', describe: 'text (default), md (GitHub tables for a PR comment) or json (schema qarvd.diff/1)' })
      .option('exit-code', { type: 'boolean', describe: 'exit with 1 when the models differ, 0 when not (like git diff --exit-code)' })
      .option('data', { type: 'boolean', describe: 'also compare tensor contents (sha256); reads every weight' })
      .example('$0 diff model.onnx model.q.onnx', 'review a quantized model')
      .example('$0 diff a.onnx b.onnx --format md > comment.md', 'a pull-request comment')
      .strict(),
  async run(args, io) {
    const before = args.before as string;
    const after = args.after as string;
    const format = reportFormat(args.format);
    for (const p of [before, after]) if (!existsSync(p)) throw new ModelFileError(p, 'no such file');
    // Imported when the command runs, so that `convert --help` does not load them.
    const [{ loadModel }, { diffModels }, { formatDiff }] = await Promise.all([import('../graph/serde/io.ts'), import('../report/diff.ts'), import('../report/diff-format.ts')]);
    const diff = diffModels(loadModel(before), loadModel(after), { beforeLabel: before, afterLabel: after, data: args.data === true });
    io.out(formatDiff(diff, format));
    return args['exit-code'] === true && diff.differ ? 1 : 0;
  },
};

/** Parses `--format` (text when absent). */
export function reportFormat(v: unknown): ReportFormat {
  const f = singleFlag(v, '--format') ?? 'text';
  if (!(REPORT_FORMATS as readonly string[]).includes(f)) throw new CliError(`--format ${f}: expected one of ${REPORT_FORMATS.join(', ')}`);
  return f as ReportFormat;
}
