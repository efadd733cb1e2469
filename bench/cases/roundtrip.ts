// load+save (no pass, inline) of every bundled model, against fs.copyFile of the same file.
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { FIXTURES } from '../../test/helpers/fixtures.ts';
import { type BenchCase, type BenchRow, round, timeCopy, timeMedian } from '../lib.ts';

const roundtrip: BenchCase = {
  name: 'roundtrip',
  summary: 'load+save of each bundled model (inline) vs fs.copyFile of the file',
  async run(ctx) {
    const rows: BenchRow[] = [];
    for (const fx of FIXTURES) {
      const out = join(ctx.tmpDir, `${fx.name}.onnx`);
      const ours = await timeMedian(() => saveModel(loadModel(fx.path), out), ctx.runs, 2);
      // The two halves on their own, for where the time goes.
      const load = await timeMedian(() => loadModel(fx.path), ctx.runs, 2);
      const model = loadModel(fx.path);
      const save = await timeMedian(() => saveModel(model, out), ctx.runs, 2);
      const copyMs = await timeCopy([{ from: fx.path, to: join(ctx.tmpDir, `${fx.name}.copy.onnx`) }], ctx.runs, 2);
      const row: BenchRow = {
        name: fx.name,
        bytes: statSync(fx.path).size,
        ms: round(ours.ms, 3),
        copyMs: round(copyMs, 3),
        ratio: round(ours.ms / copyMs, 1),
        runs: ctx.runs,
        details: { loadMs: round(load.ms, 3), saveMs: round(save.ms, 3) },
      };
      ctx.log(`${fx.name}: ${row.ms} ms vs copy ${row.copyMs} ms`);
      rows.push(row);
    }
    return rows;
  },
};

export default roundtrip;
