// Runs the benchmark cases in bench/cases/*.ts (all, or those named on the command line),
// prints a table and writes bench/results.json.
//
//   npm run bench                      every case
//   npm run bench -- roundtrip         only the named case(s)
//   npm run bench -- --runs 9 --list   runs per timing; list the cases
//
// Selected runs update their cases in results.json and keep the others (each case records its date).
import { arch, cpus, loadavg, platform, release, totalmem } from 'node:os';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { removeDir, scratchDir } from '../test/helpers/files.ts';
import type { BenchCase, BenchRow } from './lib.ts';

const BENCH_DIR = import.meta.dirname;
const RESULTS = join(BENCH_DIR, 'results.json');

interface CaseResult {
  summary: string;
  date: string;
  rows: BenchRow[];
}

interface Results {
  machine: Record<string, string | number>;
  cases: Record<string, CaseResult>;
}

async function loadCases(): Promise<BenchCase[]> {
  const dir = join(BENCH_DIR, 'cases');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts')).sort();
  const cases: BenchCase[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(dir, f)).href)) as { default?: BenchCase };
    if (!mod.default?.name || typeof mod.default.run !== 'function') throw new Error(`bench/cases/${f}: the default export is not a BenchCase`);
    cases.push(mod.default);
  }
  return cases;
}

function machine(): Record<string, string | number> {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown',
    cpus: c.length,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    date: new Date().toISOString(),
    /** Other work on the machine skews the timings: the 1-minute load average when the run started. */
    loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
    gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function' ? 'yes' : 'no',
  };
}

/** The legend of cases whose baseline is a file copy. */
const DEFAULT_LEGEND = 'baseline = fs.copyFile of the same bytes, in the same run; ratio = ours ÷ baseline; peak RSS from a child process doing one load+save.';

function table(results: Results, names: string[]): string {
  const head = ['case', 'what', 'MiB', 'ours ms', 'baseline ms', 'ratio', 'peak RSS MiB', 'RSS/weights'];
  const lines = [head];
  for (const name of names) {
    for (const r of results.cases[name]!.rows) {
      lines.push([
        name,
        r.name,
        (r.bytes / 2 ** 20).toFixed(r.bytes < 2 ** 24 ? 2 : 0),
        String(r.ms),
        r.copyMs === undefined ? '' : String(r.copyMs),
        r.ratio === undefined ? '' : `${r.ratio}×`,
        r.peakRssMiB === undefined ? '' : String(r.peakRssMiB),
        r.rssRatio === undefined ? '' : `${(r.rssRatio * 100).toFixed(1)}%`,
      ]);
    }
  }
  const widths = head.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines.map((l) => l.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n');
}

async function main(argv: string[]): Promise<void> {
  let runs = 7;
  const wanted: string[] = [];
  let list = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--runs') runs = Number(argv[++i]);
    else if (a === '--list') list = true;
    else wanted.push(a);
  }
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a positive integer');
  const all = await loadCases();
  if (list) {
    for (const c of all) console.log(`${c.name.padEnd(16)} ${c.summary}`);
    return;
  }
  const unknown = wanted.filter((w) => !all.some((c) => c.name === w));
  if (unknown.length) throw new Error(`unknown case ${unknown.join(', ')}; cases: ${all.map((c) => c.name).join(', ')}`);
  const selected = wanted.length ? all.filter((c) => wanted.includes(c.name)) : all;

  const previous: Results | undefined = existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as Results) : undefined;
  const results: Results = { machine: machine(), cases: wanted.length && previous ? { ...previous.cases } : {} };
  for (const c of selected) {
    const tmpDir = scratchDir(`bench-${c.name}`);
    console.log(`# ${c.name}: ${c.summary}`);
    try {
      const rows = await c.run({ tmpDir, runs, log: (m) => console.log(`  ${m}`) });
      results.cases[c.name] = { summary: c.summary, date: new Date().toISOString(), rows };
    } finally {
      removeDir(tmpDir);
    }
  }
  writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
  const legends = [...new Set(selected.map((c) => c.legend ?? DEFAULT_LEGEND))];
  console.log(`\n${table(results, selected.map((c) => c.name))}\n\n${legends.join('\n')}`);
  console.log(`wrote ${RESULTS}`);
}

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
