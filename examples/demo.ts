/**
 * `npm run demo`: quantizes the bundled tiny autoregressive video diffusion transformer with
 * q-arvd and with the MinMax baseline at W8A8, W4A8 and weight-only W4, calibrating on its
 * own rollouts, then rolls every model out on the evaluation prompts and prints one table.
 * Outputs go to `out/demo/` (models, reports, a PNG strip per method).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, saveModel } from '../src/graph/serde/io.ts';
import { createLogger } from '../src/passes/log.ts';
import minmax from '../src/passes/minmax.ts';
import qArvd from '../src/passes/q-arvd.ts';
import { resolveOptions, type Pass } from '../src/passes/pass.ts';
import { runQuantPass, writeJsonAtomic } from '../src/passes/quant/run-quant-pass.ts';
import type { QuantReport } from '../src/passes/quant/report.ts';
import { evaluateModels, formatTable } from './tiny-arvd/evaluate.ts';
import { writeStrip } from './tiny-arvd/frames.ts';
import { MODEL_PATH } from './tiny-arvd/prompt.ts';
import * as rolloutModule from './tiny-arvd/rollout.ts';

const OUT = 'out/demo';
const SETTINGS = [
  { label: 'W8A8', options: { 'w-bits': '8', 'a-bits': '8' } },
  { label: 'W4A8', options: { 'w-bits': '4', 'a-bits': '8' } },
  { label: 'W4', options: { 'w-bits': '4', 'a-bits': 'none' } },
] as const;

async function main(): Promise<void> {
  const started = performance.now();
  mkdirSync(OUT, { recursive: true });
  const log = createLogger({ write: (line) => process.stderr.write(line + '\n'), tty: process.stderr.isTTY });
  const ctx = { log, verbose: false, modelDir: undefined };
  const models: { name: string; path: string }[] = [];
  for (const { label, options } of SETTINGS) {
    for (const [method, pass] of [['minmax', minmax], ['q-arvd', qArvd]] as [string, Pass<any>][]) {
      const model = loadModel(MODEL_PATH);
      const resolved = resolveOptions(pass, options) as Parameters<typeof runQuantPass>[2];
      const result = await runQuantPass(model, ctx.log ? ctx : ctx, method === 'minmax' ? { ...resolved, dualScale: false } : resolved, method, rolloutModule);
      const name = `${method} ${label}`;
      const path = join(OUT, `${method}-${label}.onnx`);
      saveModel(model, path);
      writeJsonAtomic(join(OUT, `${method}-${label}.report.json`), result.report);
      if (method === 'q-arvd' && label === 'W8A8') printOutliers(result.report as QuantReport);
      models.push({ name, path });
    }
  }
  log.info('evaluating on the held-out prompts (same noise seeds as fp32)');
  const result = await evaluateModels({ fp32Path: MODEL_PATH, models });
  process.stdout.write('\n' + formatTable(result) + '\n');
  for (const { label } of SETTINGS) {
    const rows = [result.fp32, ...result.models.filter((m) => m.name.endsWith(label))];
    writeStrip(join(OUT, `frames-${label}.png`), rows.map((m) => m.videos[0]!));
  }
  process.stdout.write(`\nwrote models, reports and frame strips (rows: fp32, minmax, q-arvd) to ${OUT}/ in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
}

function printOutliers(report: QuantReport): void {
  const dual = report.layers.filter((l) => l.mode === 'dual');
  process.stdout.write(`S2 on tiny-arvd: ${dual.length} of ${report.layers.filter((l) => l.mode !== 'skipped').length} layers have outlier input channels:\n`);
  for (const l of dual) process.stdout.write(`  ${l.name}  [${l.K}×${l.N}]  ${l.outliers} outlier rows  weight error ${l.weightError!.single.toFixed(4)} → ${l.weightError!.dual!.toFixed(4)}\n`);
}

await main();
