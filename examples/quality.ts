/**
 * The quality table from the command line (the same as `npm run bench -- quality`):
 *
 *   node --import tsx examples/quality.ts [--model tiny-arvd-l] [--draws 2] [--prompts N]
 *     [--bits W8A8,W4A8] [--rows 'minmax,onnxruntime quantize_static W8A8'] [--parallel 2] [--out out/quality]
 *     [--twins N] [--seeds K]
 *
 * quantizes every row of `examples/quality/rows.ts` at each bit-width and calibration draw,
 * evaluates each against fp32 and prints one table per model.
 */
import { writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { formatQuality, MODELS, runQuality } from './quality/harness.ts';
import { BIT_WIDTHS, ROWS } from './quality/rows.ts';

const args = await yargs(hideBin(process.argv))
  .scriptName('quality')
  .option('model', { type: 'string', array: true, default: Object.keys(MODELS), choices: Object.keys(MODELS), describe: 'models to evaluate' })
  .option('draws', { type: 'number', default: 2, describe: 'calibration draws per row' })
  .option('prompts', { type: 'number', describe: 'the first N evaluation prompts (default: all of the module\'s)' })
  .option('bits', { type: 'string', default: BIT_WIDTHS.map((b) => b.label).join(','), describe: 'bit-widths, comma-separated' })
  .option('rows', { type: 'string', describe: 'only these rows of examples/quality/rows.ts, by label, comma-separated (default: all)' })
  .option('parallel', { type: 'number', default: 2, describe: 'child processes for quantization and evaluation' })
  .option('s1-from', { type: 'string', describe: 'measure S1 at this bit-width only (per draw) and reuse the curve at the other bit-widths with quantized activations (weight-only rows measure their own)' })
  .option('resume', { type: 'boolean', default: false, describe: 'reuse the models an interrupted run with the same options left in --out' })
  .option('seeds', { type: 'number', default: 1, describe: 'noise seeds per evaluation prompt (the module\'s own, then +1000, +2000, …): more rollouts of the same prompts' })
  .option('twins', { type: 'number', default: 0, describe: 'also evaluate N twins of every model and of fp32 (float initializers moved by one ulp: the rollout\'s chaos, see examples/quality/twins.ts)' })
  .option('out', { type: 'string', default: 'out/quality', describe: 'folder for the models and calibration tables' })
  .strict()
  .help()
  .parseAsync();

const wanted = args.bits.split(',').map((s) => s.trim());
const bitWidths = BIT_WIDTHS.filter((b) => wanted.includes(b.label));
const unknown = wanted.filter((w) => !BIT_WIDTHS.some((b) => b.label === w));
if (unknown.length) throw new Error(`--bits: unknown ${unknown.join(', ')}; known: ${BIT_WIDTHS.map((b) => b.label).join(', ')}`);
const wantedRows = args.rows?.split(',').map((s) => s.trim());
const unknownRows = wantedRows?.filter((w) => !ROWS.some((r) => r.label === w)) ?? [];
if (unknownRows.length) throw new Error(`--rows: unknown ${unknownRows.join(', ')}; known: ${ROWS.map((r) => r.label).join(', ')}`);
const rows = wantedRows ? ROWS.filter((r) => wantedRows.includes(r.label)) : ROWS;
for (const name of args.model) {
  const started = performance.now();
  const result = await runQuality({ model: MODELS[name], draws: args.draws, prompts: args.prompts, bitWidths, rows, parallel: args.parallel, s1From: args['s1-from'], resume: args.resume, twins: args.twins, seeds: args.seeds, out: `${args.out}/${name}`, log: (l) => process.stderr.write(`${l}\n`) });
  const table = `${formatQuality(result)}\ntotal ${((performance.now() - started) / 1000).toFixed(1)} s`;
  writeFileSync(`${args.out}/${name}/quality.txt`, `${table}\n`);
  writeFileSync(`${args.out}/${name}/quality.json`, `${JSON.stringify(result, null, 1)}\n`);
  process.stdout.write(`\n${table}\n`);
}
