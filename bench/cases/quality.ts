// Quality: the table of examples/quality (every row of examples/quality/rows.ts at W8A8, W4A8,
// W4A6 and W4, on calibration draws, evaluated against fp32) for both bundled ARVDs. The
// figures that matter are the MSEs in the printed table; the bench table's "ours ms" is the
// mean wall time of one convert run of the row.
//
//   npm run bench -- quality
//   QUALITY_MODELS=tiny-arvd QUALITY_DRAWS=3 QUALITY_PROMPTS=4 QUALITY_BITS=W8A8,W4 npm run bench -- quality
//   QUALITY_MODELS=tiny-arvd-l QUALITY_S1_FROM=W4A8 npm run bench -- quality   # one S1 curve and one collection per draw
//
// (bench/run.ts passes no options to a case, hence the environment variables.)
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { formatQuality, MODELS, runQuality } from '../../examples/quality/harness.ts';
import { BIT_WIDTHS } from '../../examples/quality/rows.ts';
import type { BenchCase, BenchRow } from '../lib.ts';

const env = (name: string): string | undefined => process.env[`QUALITY_${name}`] || undefined;
const list = (s: string | undefined): string[] | undefined => s?.split(',').map((x) => x.trim());

const quality: BenchCase = {
  name: 'quality',
  summary: 'final-video MSE vs fp32 of every quality row, on calibration draws (examples/quality)',
  legend: 'ours ms = mean wall time of one convert run of the row; the quality figures are in the printed table and in details (mse = mean over draws, mseMin/mseMax = spread).',
  async run(ctx) {
    const models = list(env('MODELS')) ?? Object.keys(MODELS);
    const bits = list(env('BITS'));
    const rows: BenchRow[] = [];
    for (const name of models) {
      const model = MODELS[name];
      if (!model) throw new Error(`QUALITY_MODELS: unknown model ${name}; known: ${Object.keys(MODELS).join(', ')}`);
      const result = await runQuality({
        model,
        draws: env('DRAWS') ? Number(env('DRAWS')) : undefined,
        prompts: env('PROMPTS') ? Number(env('PROMPTS')) : undefined,
        bitWidths: bits ? BIT_WIDTHS.filter((b) => bits.includes(b.label)) : undefined,
        parallel: env('PARALLEL') ? Number(env('PARALLEL')) : undefined,
        s1From: env('S1_FROM'),
        out: join(ctx.tmpDir, name),
        log: ctx.log,
      });
      for (const line of formatQuality(result).split('\n')) ctx.log(line);
      for (const e of result.entries) {
        const mses = e.draws.map((d) => d.mse);
        const mse = mses.reduce((a, b) => a + b, 0) / mses.length;
        rows.push({
          name: `${name} ${e.bits.label} ${e.row.label}`,
          bytes: statSync(e.draws[0].path).size,
          ms: Math.round(e.draws.reduce((a, d) => a + d.ms, 0) / e.draws.length),
          runs: e.draws.length,
          details: { mse, mseMin: Math.min(...mses), mseMax: Math.max(...mses), psnr: Number((10 * Math.log10(4 / mse)).toFixed(2)), prompts: result.prompts.length, draws: result.draws },
        });
      }
    }
    return rows;
  },
};

export default quality;
