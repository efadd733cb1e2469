// Shared by the big-model cases: generate a model of `count` × `mib` MiB weights in a child,
// then time load+save of it in child processes (peak RSS measured there) against fs.copyFile
// of its model and data files.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchContext, type BenchRow, MIB, bigModelChild, median, round, timeCopy } from './lib.ts';

export interface BigModelOptions {
  count: number;
  mib: number;
  /** `external`: ask for external data; `auto`: rely on the automatic switch over 2 GiB. */
  how: 'external' | 'auto';
  /** Runs of the load+save child (each writes the whole model again). */
  runs: number;
}

export async function bigModelRows(ctx: BenchContext, o: BigModelOptions): Promise<BenchRow[]> {
  const weights = o.count * o.mib * MIB;
  const input = join(ctx.tmpDir, 'big.onnx');
  const output = join(ctx.tmpDir, 'resaved.onnx');
  const gen = await bigModelChild(['generate', input, String(o.count), String(o.mib), o.how]);
  if (!gen.result.externalDataPath) throw new Error('the generated model was not saved with external data');
  const bytes = statSync(input).size + statSync(gen.result.externalDataPath).size;
  ctx.log(`generated ${(weights / MIB).toFixed(0)} MiB in ${(gen.saveMs / 1000).toFixed(1)} s${gen.result.externalReason ? ` (${gen.result.externalReason})` : ''}`);

  const reports = [];
  for (let i = 0; i < o.runs; i++) {
    const r = await bigModelChild(['resave', input, output, o.how]);
    if (!r.result.externalDataPath) throw new Error('the re-saved model was not saved with external data');
    reports.push(r);
    ctx.log(`load+save run ${i + 1}: ${(r.loadMs + r.saveMs).toFixed(0)} ms, peak RSS ${(r.maxRssBytes / MIB).toFixed(0)} MiB`);
  }
  const copyMs = await timeCopy(
    [
      { from: input, to: join(ctx.tmpDir, 'copy.onnx') },
      { from: gen.result.externalDataPath, to: join(ctx.tmpDir, 'copy.onnx.data') },
    ],
    o.runs,
  );
  const ms = median(reports.map((r) => r.loadMs + r.saveMs));
  const peak = Math.max(...reports.map((r) => r.maxRssBytes));
  return [
    {
      name: `${o.count}x${o.mib}MiB ${o.how}`,
      bytes,
      ms: round(ms, 1),
      copyMs: round(copyMs, 1),
      ratio: round(ms / copyMs, 2),
      peakRssMiB: round(peak / MIB, 0),
      rssRatio: round(peak / weights, 3),
      runs: o.runs,
      details: {
        weightsMiB: round(weights / MIB, 0),
        loadMs: round(median(reports.map((r) => r.loadMs)), 1),
        saveMs: round(median(reports.map((r) => r.saveMs)), 1),
        generateMs: round(gen.loadMs + gen.saveMs, 1),
        generatePeakRssMiB: round(gen.maxRssBytes / MIB, 0),
        modelFileBytes: gen.result.bytes,
        dataFileBytes: gen.result.externalDataBytes ?? 0,
        externalReason: reports[0]!.result.externalReason ?? '(asked for)',
      },
    },
  ];
}
