// Conversion at disk speed in bounded memory: a model shaped like Wan2.1-1.3B (30 blocks,
// 1.39 G parameters, 5.57 GB of float32 external data; bench/wan-model.ts) is generated tensor
// by tensor, then converted weight-only (minmax and q-arvd, W8 and W4, no calibration) and
// inspected by the `convert` CLI in child processes, each timed against `cp` of the data file
// in the same run, with its peak RSS from /usr/bin/time.
//
// "Cold": before each timed step the data file's pages are dropped from this machine's page
// cache (`sync`, then `dd iflag=nocache count=0`, which asks the kernel to drop them; checked
// with `fincore` when it is installed). A virtual machine's host may still cache the disk, so
// cold here means "not in this OS's page cache", not "read from the platters". Outputs are
// written to the page cache and not synced, for `cp` and for the conversions alike.
//
// Each round times a cold cp, a warm cp, every conversion and inspect, in that order; rounds
// repeat that (WAN_RUNS, default 2) on the same generated model, and a row gives the median
// over rounds of (ours ÷ that round's cold cp) with the smallest and largest round.
//
//   npm run bench -- wan-convert            (WAN_BLOCKS=4 for a quicker, smaller run)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync, statSync, statfsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { runTsChild } from '../../test/helpers/child.ts';
import { REPO_ROOT } from '../../test/helpers/files.ts';
import { type BenchCase, type BenchRow, median, MIB, round } from '../lib.ts';
import { wanParameters } from '../wan-model.ts';

const GB = 1e9;

/** Drops `file` from the page cache (see the header); returns the share still cached, when fincore can tell. */
function dropCache(file: string): number | undefined {
  execFileSync('sync');
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
  return cachedShare(file);
}

function cachedShare(file: string): number | undefined {
  const r = spawnSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return Number(r.stdout.trim()) / statSync(file).size;
}

interface Timed {
  ms: number;
  peakRssBytes: number;
  userS: number;
  sysS: number;
}

/** Runs a command under /usr/bin/time: wall time, peak RSS, CPU seconds. */
function timed(cmd: string, args: string[]): Timed {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'QARVD_TIME %M %U %S', cmd, ...args], { cwd: REPO_ROOT, encoding: 'utf8', maxBuffer: 1 << 28 });
  const ms = performance.now() - t0;
  const line = r.stderr.split('\n').find((l) => l.startsWith('QARVD_TIME'));
  if (r.status !== 0 || !line) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  const [, rss, user, sys] = line.split(' ');
  return { ms, peakRssBytes: Number(rss) * 1024, userS: Number(user), sysS: Number(sys) };
}

const wanConvert: BenchCase = {
  name: 'wan-convert',
  summary: 'Wan2.1-1.3B-shaped model (30 blocks, 5.57 GB external data): weight-only W8/W4 conversion and inspect vs a cold cp of the data file; peak RSS',
  legend: 'baseline = `cp` of the data file with its pages dropped from the page cache first (cold), same run; ratio = ours ÷ baseline (target ≤ 2); peak RSS of the child process from /usr/bin/time (target ≤ 1024 MiB); RSS/weights = peak RSS ÷ the float32 weights.',
  async run(ctx) {
    if (!existsSync('/usr/bin/time')) throw new Error('wan-convert needs /usr/bin/time for the peak RSS of its child processes');
    let blocks = Number(process.env.WAN_BLOCKS ?? 30);
    const weights = wanParameters(blocks) * 4;
    // The model, one copy of its data file (cp) and the largest output, with 10% to spare.
    const free = (() => {
      const s = statfsSync(ctx.tmpDir);
      return s.bavail * s.bsize;
    })();
    const need = (w: number) => 2.35 * w;
    if (free < need(weights)) {
      const fits = Math.floor((free / need(wanParameters(1) * 4)) * 0.9);
      if (fits < 1) throw new Error(`wan-convert: ${(free / GB).toFixed(1)} GB free in ${ctx.tmpDir}, not enough for one block`);
      ctx.log(`only ${(free / GB).toFixed(1)} GB free in ${ctx.tmpDir}, ${(need(weights) / GB).toFixed(1)} GB needed for ${blocks} blocks: using ${fits} blocks (same tensor sizes)`);
      blocks = fits;
    }
    ctx.log('building dist/ (the CLI runs the compiled code)');
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, stdio: 'ignore' });

    const model = join(ctx.tmpDir, 'wan.onnx');
    const gen = await runTsChild<{ ms: number; maxRssBytes: number; result: { externalDataPath: string; externalDataBytes: number } }>('bench/wan-model.ts', ['generate', model, String(blocks)]);
    const data = gen.result.externalDataPath;
    const dataBytes = statSync(data).size;
    ctx.log(`generated ${blocks} blocks, ${(dataBytes / GB).toFixed(2)} GB of data, in ${(gen.ms / 1000).toFixed(1)} s, peak RSS ${(gen.maxRssBytes / MIB).toFixed(0)} MiB`);

    const copy = join(ctx.tmpDir, 'copy.data');
    const cp = (cold: boolean) => {
      const cached = cold ? dropCache(data) : cachedShare(data);
      const t = timed('cp', [data, copy]);
      rmSync(copy);
      ctx.log(`cp ${cold ? 'cold' : 'warm'}: ${(t.ms / 1000).toFixed(1)} s, CPU ${t.userS} s user + ${t.sysS} s sys (${cached === undefined ? 'cache state unknown' : `${(cached * 100).toFixed(0)}% cached before`})`);
      return t.ms;
    };
    const bin = join(REPO_ROOT, 'bin', 'convert.js');
    const conversions: [string, string, string, string[]][] = [
      ['minmax W8', 'minmax', '8', []],
      ['minmax W4', 'minmax', '4', []],
      ['q-arvd W8', 'q-arvd', '8', []],
      ['q-arvd W4', 'q-arvd', '4', []],
      ['q-arvd W8, 1 thread', 'q-arvd', '8', ['--q-arvd.threads', '1']],
    ];
    /** Per row name, one entry per round. */
    const measured = new Map<string, { t: Timed; cold: number; warm: number; load: number; outputBytes?: number }[]>();
    const rounds = Math.max(1, Number(process.env.WAN_RUNS ?? 2));
    for (let round_ = 0; round_ < rounds; round_++) {
      ctx.log(`round ${round_ + 1} of ${rounds}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
      const cold = cp(true);
      const warm = cp(false);
      const note = (name: string, t: Timed, cached: number | undefined, outputBytes?: number) => {
        const load = loadavg()[0]!;
        ctx.log(`${name}: ${(t.ms / 1000).toFixed(1)} s = ${round(t.ms / cold, 2)}× cold cp, ${round(t.ms / warm, 2)}× warm cp; peak RSS ${(t.peakRssBytes / MIB).toFixed(0)} MiB; CPU ${t.userS} s user + ${t.sysS} s sys; input ${cached === undefined ? '?' : (cached * 100).toFixed(0)}% cached before; load ${load.toFixed(1)}`);
        measured.set(name, [...(measured.get(name) ?? []), { t, cold, warm, load, ...(outputBytes === undefined ? {} : { outputBytes }) }]);
      };
      for (const [name, pass, bits, extra] of conversions) {
        const out = join(ctx.tmpDir, 'out.onnx');
        const cached = dropCache(data);
        const t = timed(process.execPath, [bin, model, '-o', out, '--pass', pass, `--${pass}.a-bits`, 'none', `--${pass}.w-bits`, bits, ...extra, '-q']);
        const outBytes = statSync(out).size + (existsSync(`${out}.data`) ? statSync(`${out}.data`).size : 0);
        rmSync(out, { force: true });
        rmSync(`${out}.data`, { force: true });
        note(name, t, cached, outBytes);
      }
      const cached = dropCache(data);
      note('inspect', timed(process.execPath, [bin, 'inspect', model, '--format', 'json']), cached);
    }
    const rows: BenchRow[] = [...measured].map(([name, runs]) => {
      const ratios = runs.map((r) => r.t.ms / r.cold);
      const warmRatios = runs.map((r) => r.t.ms / r.warm);
      const peak = Math.max(...runs.map((r) => r.t.peakRssBytes));
      const range = (xs: number[]) => `${round(Math.min(...xs), 2)}–${round(Math.max(...xs), 2)}`;
      return {
        name,
        bytes: dataBytes,
        ms: round(median(runs.map((r) => r.t.ms)), 0),
        copyMs: round(median(runs.map((r) => r.cold)), 0),
        ratio: round(median(ratios), 2),
        peakRssMiB: round(peak / MIB, 0),
        rssRatio: round(peak / weights, 3),
        runs: runs.length,
        details: {
          blocks,
          ratioRange: range(ratios),
          warmCpMs: round(median(runs.map((r) => r.warm)), 0),
          ratioToWarmCp: round(median(warmRatios), 2),
          ratioToWarmCpRange: range(warmRatios),
          msPerRound: runs.map((r) => round(r.t.ms, 0)).join(', '),
          coldCpMsPerRound: runs.map((r) => round(r.cold, 0)).join(', '),
          cpuUserSys: runs.map((r) => `${r.t.userS}+${r.t.sysS}`).join(', '),
          loadAverage1m: range(runs.map((r) => r.load)),
          ...(runs[0]!.outputBytes === undefined ? {} : { outputBytes: runs[0]!.outputBytes }),
        },
      };
    });
    rmSync(model, { force: true });
    rmSync(data, { force: true });
    return rows;
  },
};

export default wanConvert;
