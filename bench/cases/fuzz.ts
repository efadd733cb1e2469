// The fuzz run at scale: seeded mutants of the bundled real models through load → round trip
// → verify and convert (test/fuzz/run-cases.ts), counted by verdict. The suite runs 200.
import { runFuzz } from '../../test/fuzz/fuzz-child.ts';
import type { BenchCase } from '../lib.ts';

/** Cases per bench run (FUZZ_CASES overrides). */
const CASES = Number(process.env.FUZZ_CASES ?? 2000);

const fuzz: BenchCase = {
  name: 'fuzz',
  summary: `${CASES} seeded mutants of stories260K and the tiny ARVD through load, round trip, verify and convert`,
  legend: 'rows: verdict counts (ok = exit 0, onnxruntime loads input and output; ok-ortbad = exit 0, onnxruntime rejects the input too; refused = exit 1, one line, nothing written; bad = anything else, must be 0); ms = the whole run.',
  async run(ctx) {
    const run = await runFuzz({ seed: 1, cases: CASES, dir: ctx.tmpDir, caseTimeoutMs: 120_000 });
    for (const f of run.failures) ctx.log(`failure: ${f}`);
    for (const r of run.results.filter((x) => x.verdict === 'bad')) ctx.log(`bad case ${r.id} (${r.fixture}, ${r.how}, ${r.args || 'round trip'}): ${r.detail}`);
    const verdicts = ['ok', 'ok-ortbad', 'refused', 'bad'] as const;
    return [
      ...verdicts.map((v) => ({ name: v, bytes: 0, ms: run.counts[v], runs: 1, details: { of: run.results.length } })),
      { name: 'failures', bytes: 0, ms: run.failures.length, runs: 1, details: { seconds: Math.round(run.ms / 1000) } },
    ];
  },
};

export default fuzz;
