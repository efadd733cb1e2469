// Calibration memory at Wan2.1-1.3B scale (issue 14; docs/calibration-memory.md): a stack of
// BLOCKS Wan2.1-shaped blocks (bench/wan-model.ts: width 1536, FFN 8960, every block with
// self- and cross-attention q, k, v, o and ffn.0, ffn.2; generated from fixed seeds — no such
// model ships with the repository, and memory depends on the shapes, not on trained values)
// is quantized by the q-arvd pass W4 weight-only with bias correction from SAMPLES × ROWS
// calibration rows of a feeds module, once per statistics-memory budget, each run in a child
// process of its own (its peak RSS is process.resourceUsage().maxRSS).
//
// reconstruct none + bias-correction: the pass collects exactly the statistics GPTQ uses (the
// Gram matrices of every layer input, both folds) and walks the layers group by group, but
// rounds to nearest, so the rows measure calibration's memory and the cost of one more run
// of the samples per group, not GPTQ's own time (bench/cases/reconstruction.ts measures that:
// its working copy adds about one H of the layer being reconstructed, 0.6 GiB for ffn.2).
//
// The last run splits every sample's rows into two chunk-tagged calls (two chunks, α = 1 for a
// feeds module): per chunk, ffn.2's statistics alone take 4.19 GiB, more than the default, so
// before the groups after the first were α-weighted this run was refused.
//
// Every run's output model is hashed: the runs with the same chunk count must give the same bytes.
//
// Run as a child: node --import tsx --expose-gc bench/cases/calibration-memory.ts --child <dir> <budget> <chunks>
// prints one JSON line (ChildReport).
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { inputStatisticsBytes } from '../../src/passes/calibration/grouped.ts';
import type { CalibrationModule } from '../../src/passes/calibration/module.ts';
import { createLogger } from '../../src/passes/log.ts';
import { resolveOptions } from '../../src/passes/pass.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import type { SharedQuantValues } from '../../src/passes/quant/quant-options.ts';
import { runQuantPass } from '../../src/passes/quant/run-quant-pass.ts';
import { runTsChild } from '../../test/helpers/child.ts';
import { type BenchCase, type BenchRow, round } from '../lib.ts';
import { buildWanModel, WAN_FFN, WAN_WIDTH } from '../wan-model.ts';

const BLOCKS = 3;
/** Two samples (two folds, as damp auto needs) of ROWS rows each. */
const SAMPLES = 2;
const ROWS = 1024;
/** One group (everything at once), the default (groups), and the default with two chunks per sample. */
const RUNS: { budget: string; chunks: number }[] = [
  { budget: '64GiB', chunks: 1 },
  { budget: '4GiB', chunks: 1 },
  { budget: '4GiB', chunks: 2 },
];

interface ChildReport {
  budget: string;
  chunks: number;
  /** The whole job: the pass and the save. */
  ms: number;
  /** The pass alone. */
  passMs: number;
  collectMs: number;
  groups: number;
  maxRssBytes: number;
  sha256: string;
  loadAverage: number[];
}

/** The feeds module: SAMPLES samples, each ROWS rows (low-rank plus noise, a few large channels) in `chunks` calls tagged 0, 1, …. */
function calibration(chunks: number): CalibrationModule {
  return {
    samples: SAMPLES,
    async *feeds(ctx) {
      const rng = seededRandom(100 + ctx.sample);
      const rank = 64;
      const mix = Float32Array.from({ length: rank * WAN_WIDTH }, () => rng.normal() / Math.sqrt(rank));
      const x = new Float32Array(ROWS * WAN_WIDTH);
      for (let r = 0; r < ROWS; r++) {
        const at = r * WAN_WIDTH;
        for (let k = 0; k < WAN_WIDTH; k++) x[at + k] = 0.3 * rng.normal() + (k % 97 === 3 ? 4 : 0);
        for (let p = 0; p < rank; p++) {
          const f = rng.normal();
          for (let k = 0; k < WAN_WIDTH; k++) x[at + k] += f * mix[p * WAN_WIDTH + k]!;
        }
      }
      const rows = ROWS / chunks;
      for (let c = 0; c < chunks; c++) yield { feeds: { x: new ort.Tensor('float32', x.slice(c * rows * WAN_WIDTH, (c + 1) * rows * WAN_WIDTH), [rows, WAN_WIDTH]) }, ...(chunks > 1 ? { chunk: c } : {}) };
    },
  };
}

async function child(dir: string, budget: string, chunks: number): Promise<ChildReport> {
  const model = loadModel(join(dir, 'wan.onnx'));
  const lines: string[] = [];
  const options = resolveOptions(qArvd, { 'w-bits': '4', 'a-bits': 'none', reconstruct: 'none', 'bias-correction': true, 'dual-scale': 'false', 'statistics-memory': budget }) as unknown as SharedQuantValues;
  const t0 = performance.now();
  const result = await runQuantPass(model, { log: createLogger({ write: (l) => lines.push(l), verbose: true }), verbose: true, modelDir: dir }, options, 'q-arvd', calibration(chunks));
  const passMs = performance.now() - t0;
  const out = join(dir, `out-${budget}-${chunks}`);
  mkdirSync(out, { recursive: true });
  saveModel(model, join(out, 'model.onnx'), { externalData: true });
  const ms = performance.now() - t0;
  const hash = createHash('sha256');
  for (const name of readdirSync(out).sort()) hash.update(name).update(readFileSync(join(out, name)));
  const groups = Number(/collected in (\d+) groups/.exec(lines.join('\n'))?.[1] ?? 1);
  const collect = (result.report as { calibration?: { seconds?: { collect: number } } }).calibration?.seconds?.collect ?? 0;
  for (const l of lines.filter((l) => /group|statistics/.test(l))) process.stderr.write(`${l}\n`);
  return { budget, chunks, ms, passMs, collectMs: collect * 1000, groups, maxRssBytes: process.resourceUsage().maxRSS * 1024, sha256: hash.digest('hex'), loadAverage: loadavg() };
}

const calibrationMemoryCase: BenchCase = {
  name: 'calibration-memory',
  summary: `q-arvd W4 weight-only with bias correction of ${BLOCKS} Wan2.1-1.3B-shaped blocks from ${SAMPLES}×${ROWS} calibration rows, per statistics-memory budget and chunks per sample (${RUNS.map((r) => `${r.budget} × ${r.chunks}`).join(', ')}): wall time, groups, peak RSS of the job`,
  legend: 'calibration-memory rows: baseline = the one-group run (largest budget) in the same bench run; ratio = this run ÷ it. peakRssMiB from the child process. Runs with the same chunk count must write the same model (sha256).',
  async run(ctx) {
    const gen = await runTsChild<{ ms: number }>('bench/wan-model.ts', ['generate', join(ctx.tmpDir, 'wan.onnx'), String(BLOCKS)]);
    ctx.log(`generated ${BLOCKS} Wan-shaped blocks in ${round(gen.ms / 1000, 1)} s`);
    const reports: ChildReport[] = [];
    for (const { budget, chunks } of RUNS) {
      const r = await runTsChild<ChildReport>('bench/cases/calibration-memory.ts', ['--child', ctx.tmpDir, budget, String(chunks)], { nodeArgs: ['--expose-gc'] });
      ctx.log(`statistics-memory ${budget}, ${chunks} chunk(s): ${r.groups} group(s), ${round(r.ms / 1000, 1)} s (the pass ${round(r.passMs / 1000, 1)} s, its first collection ${round(r.collectMs / 1000, 1)} s), peak RSS ${round(r.maxRssBytes / 2 ** 20, 0)} MiB, load ${r.loadAverage.map((l) => round(l, 1)).join(' / ')}`);
      reports.push(r);
    }
    const base = reports[0]!;
    // Two chunks sum the rows' means in another order: only runs with the same chunk count compare.
    const same = reports.every((r) => r.sha256 === reports.find((o) => o.chunks === r.chunks)!.sha256);
    if (!same) throw new Error(`calibration-memory: budgets wrote different models (${reports.map((r) => `${r.budget} × ${r.chunks} ${r.sha256.slice(0, 12)}`).join(', ')})`);
    const perBlock = (chunks: number | null) => 5 * inputStatisticsBytes(WAN_WIDTH, chunks) + inputStatisticsBytes(WAN_FFN, chunks);
    return reports.map((r): BenchRow => ({
      name: `${BLOCKS} Wan-shaped blocks, statistics-memory ${r.budget}, ${r.chunks} chunk(s): ${r.groups} group(s)`,
      bytes: 0,
      ms: round(r.ms, 0),
      copyMs: round(base.ms, 0),
      ratio: round(r.ms / base.ms, 2),
      peakRssMiB: round(r.maxRssBytes / 2 ** 20, 0),
      runs: 1,
      details: { groups: r.groups, passMs: round(r.passMs, 0), collectMs: round(r.collectMs, 0), statisticsPerBlockMiB: round(perBlock(r.chunks) / 2 ** 20, 0), weightedPerBlockMiB: round(perBlock(null) / 2 ** 20, 0), sameModel: String(same), loadAverage: r.loadAverage.map((l) => round(l, 1)).join(' / ') },
    }));
  },
};

export default calibrationMemoryCase;

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href && process.argv.includes('--child')) {
  const at = process.argv.indexOf('--child');
  console.log(JSON.stringify(await child(process.argv[at + 1]!, process.argv[at + 2]!, Number(process.argv[at + 3] ?? 1))));
}
