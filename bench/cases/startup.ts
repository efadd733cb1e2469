// How fast the installed CLI starts (issue 16): `node bin/convert.js …` (the compiled dist/,
// no tsx) against `node -e 0` in the same run, the two interleaved so that load from other
// work on the machine hits both alike. The target for `--help` is at most 2× bare Node.
// The ratio's spread is that of the per-pair ratios (each run against the bare Node run just
// before it), and each row records the 1-minute load average when it finished.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { type BenchCase, type BenchRow, median, round } from '../lib.ts';

const BIN = resolve('bin/convert.js');
const STORIES = resolve('test/fixtures/stories260K/stories260K.onnx');

/** Wall time of one `node <args>` in ms; throws with its stderr when it fails. */
function timeNode(args: string[], cwd: string): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return ms;
}

const startup: BenchCase = {
  name: 'startup',
  summary: 'convert --help, passes, a round trip, a weight-only conversion and a diff of stories260K, vs node -e 0',
  legend: 'startup: baseline = `node -e 0` interleaved with each command in the same run; ratio = ours ÷ baseline; MiB = the model read.',
  async run(ctx) {
    if (!existsSync(resolve('dist/src/cli/main.js'))) throw new Error('dist/ is missing: run npm run build first (bin/convert.js runs the compiled code)');
    copyFileSync(STORIES, join(ctx.tmpDir, 'model.onnx'));
    const commands: [string, string[], number][] = [
      ['convert --help', ['--help'], 0],
      ['convert passes', ['passes'], 0],
      ['round trip stories260K', ['model.onnx', '-o', 'rt.onnx'], statSync(STORIES).size],
      ['weight-only W8 stories260K', ['model.onnx', '-o', 'w8.onnx', '--pass', 'q-arvd', '--q-arvd.a-bits', 'none'], statSync(STORIES).size],
      // w8.onnx is the weight-only command's output: the two files differ in every layer.
      ['diff stories260K w8', ['diff', 'model.onnx', 'w8.onnx'], statSync(STORIES).size],
    ];
    const rows: BenchRow[] = [];
    for (const [name, args, bytes] of commands) {
      const ours: number[] = [];
      const bare: number[] = [];
      timeNode([BIN, ...args], ctx.tmpDir); // warm the file cache
      for (let i = 0; i < ctx.runs; i++) {
        bare.push(timeNode(['-e', '0'], ctx.tmpDir));
        ours.push(timeNode([BIN, ...args], ctx.tmpDir));
      }
      const pairs = ours.map((t, i) => t / bare[i]!);
      const row: BenchRow = {
        name,
        bytes,
        ms: round(median(ours), 1),
        copyMs: round(median(bare), 1),
        ratio: round(median(ours) / median(bare), 2),
        runs: ctx.runs,
        details: {
          oursMinMs: round(Math.min(...ours), 1),
          oursMaxMs: round(Math.max(...ours), 1),
          nodeMinMs: round(Math.min(...bare), 1),
          nodeMaxMs: round(Math.max(...bare), 1),
          pairRatioMin: round(Math.min(...pairs), 2),
          pairRatioMax: round(Math.max(...pairs), 2),
          loadAverage1m: round(loadavg()[0]!, 2),
        },
      };
      const d = row.details!;
      ctx.log(`${name}: ${row.ms} ms (${d.oursMinMs}–${d.oursMaxMs}) vs node -e 0 ${row.copyMs} ms (${d.nodeMinMs}–${d.nodeMaxMs}): ${row.ratio}× (pairs ${d.pairRatioMin}–${d.pairRatioMax}×), load ${d.loadAverage1m}`);
      rows.push(row);
    }
    return rows;
  },
};

export default startup;
