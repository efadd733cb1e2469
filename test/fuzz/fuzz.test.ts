// Seeded mutants of the bundled real models (stories260K, the tiny ARVD) through load →
// round trip → verify and through convert: every case must end in a valid output or one
// clean error line — no stack trace, no signal, no hang, nothing left behind, input
// unchanged (test/fuzz/run-cases.ts has the verdicts). `npm run bench -- fuzz` runs more.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { runFuzz } from './fuzz-child.ts';

/** Cases in the suite: about 30 s on the 2-core CI machine when it is not shared. */
const CASES = Number(process.env.FUZZ_CASES ?? 200);

let dir: string;
beforeAll(() => {
  dir = scratchDir('fuzz');
});
afterAll(() => removeDir(dir));

describe('fuzz: mutants of real models', () => {
  it(`${CASES} seeded byte- and field-level mutants: a valid output or one clean error line each`, async () => {
    const run = await runFuzz({ seed: 20261204, cases: CASES, dir, caseTimeoutMs: 60_000 });
    console.log(`fuzz: ${run.results.length} cases in ${(run.ms / 1000).toFixed(1)} s: ${JSON.stringify(run.counts)}`);
    expect(run.failures).toEqual([]);
    expect(run.results.filter((r) => r.verdict === 'bad')).toEqual([]);
    expect(run.results).toHaveLength(CASES);
    // The mix must exercise both outcomes, or the mutator has stopped mutating.
    expect(run.counts.refused).toBeGreaterThan(CASES / 10);
    expect(run.counts.ok + run.counts['ok-ortbad']).toBeGreaterThan(0);
  }, 600_000);
});
