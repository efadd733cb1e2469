/**
 * `convert inspect <model.onnx> [--format text|md|json] [--html report.html] [--tau …]`:
 * the S2 outlier statistics of every linear layer under the q-arvd rules, without changing
 * the model (see `src/report/inspect.ts`); `--html` also writes the self-contained report.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { dataFilesOf } from '../api/paths.ts';
import { checkRunFiles } from '../api/run-files.ts';
import { ModelFileError } from '../graph/serde/errors.ts';
import type { QuantReport } from '../passes/quant/report.ts';
import { listFlag, singleFlag } from './args.ts';
import type { CliCommand } from './command.ts';
import { INSPECT_SPEC } from './specs.ts';
import { reportFormat } from './diff-command.ts';
import { CliError } from './errors.ts';
import { cliLogger, type GlobalFlags } from './io.ts';

export const inspectCommand: CliCommand = {
  spec: INSPECT_SPEC,
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
      scope: scopeFlag(singleFlag(args.scope, '--scope')),
      norms: html !== undefined,
    };
    if (!existsSync(path)) throw new ModelFileError(path, 'no such file');
    const quant = reportPath ? readQuantReport(reportPath) : undefined;
    // Imported when the command runs, so that the other commands do not load them.
    const [{ loadModel }, { inspectModel }, { formatInspect }, { renderHtmlReport }, { findLinearLayers }] = await Promise.all([
      import('../graph/serde/io.ts'),
      import('../report/inspect.ts'),
      import('../report/inspect-format.ts'),
      import('../report/html.ts'),
      import('../passes/quant/linear-layers.ts'),
    ]);
    const model = loadModel(path);
    if (quant && reportPath) {
      // The passes' names for the model's MatMul/Gemm nodes (unnamed ones get generated names), read from the graph alone.
      const found = findLinearLayers(model.graph, { minK: 0 });
      checkReportLayers(quant, reportPath, new Set([...found.layers, ...found.skipped].map((l) => l.name)), path);
    }
    if (html) {
      // Before the model's weights are read (that can take a while): the report must not land on what inspect reads.
      const reads = [{ label: 'the model', path }, ...dataFilesOf(model).map((f) => ({ label: "the model's data file", path: f })), ...(reportPath ? [{ label: '--report', path: reportPath }] : [])];
      checkRunFiles(reads, [{ label: '--html', path: html }]);
    }
    const report = inspectModel(model, path, options);
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

/**
 * Refuses a report made on another model: every layer it names must be a MatMul/Gemm of the
 * model (the float model the report's conversion read), or its charts would show layers the model
 * does not have.
 */
function checkReportLayers(quant: QuantReport, reportPath: string, nodes: ReadonlySet<string>, modelPath: string): void {
  const missing = quant.layers.filter((l) => !nodes.has(l.name));
  if (missing.length === 0) return;
  throw new CliError(`--report ${reportPath}: ${missing.length} of its ${quant.layers.length} layers are not MatMul/Gemm nodes of ${modelPath} (first: ${missing[0]!.name}); give the report of a conversion of this model (inspect the float model the conversion read)`);
}

/** Writes through a temporary file and a rename, so a reader never sees half a report. */
function writeAtomic(path: string, text: string): void {
  const full = resolve(path);
  const tmp = `${full}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, full);
}

/** `--scope all|blocks|outer-w8` (absent: all). */
function scopeFlag(v: string | undefined): 'all' | 'blocks' | 'outer-w8' {
  if (v === undefined || v === 'all' || v === 'blocks' || v === 'outer-w8') return v ?? 'all';
  throw new CliError(`--scope ${v}: expected one of all, blocks, outer-w8`);
}
