/**
 * `convert inspect <model.onnx> [--format text|md|json] [--html report.html] [--tau …]`:
 * the S2 outlier statistics of every linear layer under the q-arvd rules, without changing
 * the model (see `src/report/inspect.ts`); `--html` also writes the self-contained report.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ModelFileError } from '../graph/serde/errors.ts';
import type { QuantReport } from '../passes/quant/report.ts';
import { listFlag, singleFlag } from './args.ts';
import type { CliCommand } from './command.ts';
import { reportFormat } from './diff-command.ts';
import { CliError } from './errors.ts';
import { cliLogger, type GlobalFlags } from './io.ts';

export const inspectCommand: CliCommand = {
  command: 'inspect <model>',
  describe: 'Per linear layer: channel-norm statistics and the S2 outlier decision (the model is not changed)',
  builder: (y) =>
    y
      .usage('Usage: $0 inspect <model.onnx> [--format text|md|json] [--html report.html] [--tau 3.5] [--gamma 1.2] [--align 32] [--min-k 16]')
      .positional('model', { type: 'string', describe: 'the ONNX model to read' })
      .option('format', { type: 'string', describe: 'text (default), md or json (schema qarvd.inspect/1)' })
      .option('html', { type: 'string', describe: 'also write a self-contained HTML report with the charts to this path' })
      .option('report', { type: 'string', describe: 'a q-arvd --report JSON of this model: adds weight errors, activation scales and the S1 curve to the HTML' })
      .option('tau', { type: 'string', describe: 'modified z-score threshold (default 3.5)' })
      .option('gamma', { type: 'string', describe: 'an outlier norm must also exceed gamma × median (default 1.2)' })
      .option('align', { type: 'string', describe: 'round outlier counts up to a multiple of this (default 32; 1 disables)' })
      .option('min-k', { type: 'string', describe: 'skip layers with fewer input channels (default 16)' })
      .option('include', { type: 'string', describe: 'only layers whose node name matches one of these globs (comma-separated)' })
      .option('exclude', { type: 'string', describe: 'skip layers whose node name matches one of these globs (comma-separated)' })
      .example('$0 inspect model.onnx', 'outlier statistics per layer and the type × depth table')
      .example('$0 inspect model.onnx --html report.html --report q-arvd.json', 'the charts, with the pass report')
      .strict(),
  async run(args, io) {
    const log = cliLogger(io, args as GlobalFlags);
    const path = args.model as string;
    const format = reportFormat(args.format);
    const html = singleFlag(args.html, '--html');
    const reportPath = singleFlag(args.report, '--report');
    if (reportPath && !html) throw new CliError('--report only adds to the HTML report; give --html <file> too');
    const options = {
      tau: numberFlag(args.tau, '--tau', (x) => x > 0, 'a positive number'),
      gamma: numberFlag(args.gamma, '--gamma', (x) => x >= 1, 'a number ≥ 1'),
      align: numberFlag(args.align, '--align', (x) => Number.isInteger(x) && x >= 1, 'an integer ≥ 1'),
      minK: numberFlag(args['min-k'], '--min-k', (x) => Number.isInteger(x) && x >= 1, 'an integer ≥ 1'),
      include: listFlag(args.include, 'include', true),
      exclude: listFlag(args.exclude, 'exclude', true),
      norms: html !== undefined,
    };
    if (!existsSync(path)) throw new ModelFileError(path, 'no such file');
    const quant = reportPath ? readQuantReport(reportPath) : undefined;
    // Imported when the command runs, so that `convert --help` does not load them.
    const [{ loadModel }, { inspectModel }, { formatInspect }, { renderHtmlReport }] = await Promise.all([
      import('../graph/serde/io.ts'),
      import('../report/inspect.ts'),
      import('../report/inspect-format.ts'),
      import('../report/html.ts'),
    ]);
    const report = inspectModel(loadModel(path), path, options);
    io.out(formatInspect(report, format));
    if (html) {
      writeAtomic(html, renderHtmlReport({ inspect: report, quant }));
      log.info(`wrote ${html}`);
    }
    return 0;
  },
};

function numberFlag(v: unknown, flag: string, ok: (x: number) => boolean, what: string): number | undefined {
  const s = singleFlag(v, flag);
  if (s === undefined) return undefined;
  const x = Number(s);
  if (s.trim() === '' || !Number.isFinite(x) || !ok(x)) throw new CliError(`${flag} ${s}: expected ${what}`);
  return x;
}

function readQuantReport(path: string): QuantReport {
  if (!existsSync(path)) throw new CliError(`--report ${path}: no such file`);
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CliError(`--report ${path}: not JSON (${(e as Error).message})`);
  }
  const r = data as Partial<QuantReport>;
  if (!r || typeof r !== 'object' || !Array.isArray(r.layers) || typeof r.method !== 'string') {
    throw new CliError(`--report ${path}: not a quantization report (expected method and layers, as --q-arvd.report writes)`);
  }
  return r as QuantReport;
}

/** Writes through a temporary file and a rename, so a reader never sees half a report. */
function writeAtomic(path: string, text: string): void {
  const full = resolve(path);
  const tmp = `${full}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, full);
}
