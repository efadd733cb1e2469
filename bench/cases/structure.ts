// The cost of the structural checks that run on every conversion (before the first pass and
// after the last) and of the full --verify, against loading the same model.
import { statSync } from 'node:fs';
import { loadModel } from '../../src/graph/serde/io.ts';
import { structuralIssues } from '../../src/graph/structure.ts';
import { verifyModel } from '../../src/graph/verify.ts';
import { FIXTURES } from '../../test/helpers/fixtures.ts';
import { type BenchCase, type BenchRow, round, timeMedian } from '../lib.ts';

const structure: BenchCase = {
  name: 'structure',
  summary: 'structural checks (always on) and full verify, against load, per bundled model',
  legend: 'ms = structural checks; baseline = loadModel of the same file; ratio = checks ÷ load; details: full verify.',
  async run(ctx) {
    const rows: BenchRow[] = [];
    for (const fx of FIXTURES) {
      const load = await timeMedian(() => loadModel(fx.path), ctx.runs, 2);
      const model = loadModel(fx.path);
      const checks = await timeMedian(() => structuralIssues(model), ctx.runs, 2);
      const verify = await timeMedian(() => verifyModel(model), ctx.runs, 2);
      rows.push({
        name: fx.name,
        bytes: statSync(fx.path).size,
        ms: round(checks.ms, 3),
        copyMs: round(load.ms, 3),
        ratio: round(checks.ms / load.ms, 3),
        runs: ctx.runs,
        details: { nodes: [...model.graph.allNodes()].length, verifyMs: round(verify.ms, 3) },
      });
      ctx.log(`${fx.name}: checks ${round(checks.ms, 3)} ms, verify ${round(verify.ms, 3)} ms, load ${round(load.ms, 3)} ms`);
    }
    return rows;
  },
};

export default structure;
