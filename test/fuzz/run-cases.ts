// Runs fuzz cases in this process and prints one JSON line per case: the fuzz test and
// `npm run bench -- fuzz` start it as a child, so a hang or a crash (a signal) is seen from
// outside and pinned on the case that was running.
//
//   node --import tsx test/fuzz/run-cases.ts --seed 1 --cases 200 --dir <scratch folder>
//
// Per case: a mutant of a bundled real model (byte- or field-level, alternating) goes through
// load → round trip → verify in-process, then through `convert` (round trip, dce, or
// weight-only q-arvd). The verdict:
//   ok        exit 0 and onnxruntime loads input and output
//   ok-ortbad exit 0 and onnxruntime rejects the input too (output then not required to load)
//   refused   exit 1 with one error line naming the input or the pass (after any progress
//             lines of the pass itself), no stack, no output file
//   bad       anything else (the line says what)
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { run } from '../../src/cli/main.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { isExpected } from '../../src/cli/errors.ts';
import { structuralIssues } from '../../src/graph/structure.ts';
import { verifyModel } from '../../src/graph/verify.ts';
import { seededRandom } from '../../src/kernels/random.ts';
import { byteMutant, fieldHeaders, fieldMutant, type Mutant } from './mutate.ts';

/** The bundled real models the mutants come from. */
export const FUZZ_FIXTURES = ['test/fixtures/stories260K/stories260K.onnx', 'examples/tiny-arvd/model.onnx'];

const PASSES: readonly string[][] = [[], ['--pass', 'dce'], ['--pass', 'q-arvd', '--q-arvd.a-bits', 'none']];

/** One case's outcome, as printed. */
export interface CaseResult {
  id: number;
  fixture: string;
  how: string;
  args: string;
  verdict: 'ok' | 'ok-ortbad' | 'refused' | 'bad';
  detail?: string;
  ms: number;
}

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : dflt;
};

async function ortLoads(source: string | Uint8Array): Promise<boolean> {
  try {
    const s = typeof source === 'string' ? await ort.InferenceSession.create(source) : await ort.InferenceSession.create(source);
    await s.release();
    return true;
  } catch {
    return false;
  }
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function runCase(id: number, fixture: string, m: Mutant, passArgs: string[], dir: string): Promise<Omit<CaseResult, 'ms'>> {
  const base = { id, fixture, how: m.how, args: passArgs.join(' ') };
  const bad = (detail: string) => ({ ...base, verdict: 'bad' as const, detail });
  const caseDir = join(dir, `case-${id}`);
  const [inDir, outDir] = [join(caseDir, 'in'), join(caseDir, 'out')];
  mkdirSync(inDir, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  const input = join(inDir, 'model.onnx');
  writeFileSync(input, m.bytes);
  const before = sha(m.bytes);
  try {
    // 1. load → round trip → verify, in-process: only the tool's own errors may come out.
    try {
      const model = loadModel(input);
      structuralIssues(model);
      verifyModel(model);
      saveModel(model, join(caseDir, 'roundtrip.onnx'));
      loadModel(join(caseDir, 'roundtrip.onnx'));
    } catch (e) {
      if (!isExpected(e)) return bad(`load/round trip threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
    // 2. convert, in-process, as the CLI would run it.
    let out = '';
    let err = '';
    const output = join(outDir, 'out.onnx');
    const code = await run([input, '-o', output, ...passArgs], { out: (t) => void (out += t), err: (t) => void (err += t), tty: false });
    if (sha(readFileSync(input)) !== before || readdirSync(inDir).length !== 1) return bad('the input folder changed');
    const written = readdirSync(outDir);
    if (code === 1) {
      // A pass's own progress lines (`convert: [q-arvd] …`, such as weight-only's note that
      // it rounds to nearest without calibration data) may come first; then exactly one error line.
      const lines = err.trimEnd().split('\n').filter((l) => !/^convert: \[[\w./-]+\] /.test(l));
      if (lines.length !== 1 || !lines[0]!.startsWith('convert: error: ') || !err.trimEnd().endsWith(lines[0]!)) return bad(`exit 1 with: ${JSON.stringify(err)}`);
      if (written.length) return bad(`exit 1 but wrote ${written.join(', ')}`);
      // The line names the user's file (or the pass that refused), never a temp file or a bare errno.
      const what = lines[0]!.slice('convert: error: '.length);
      if (!what.startsWith(`${input}: `) && !what.startsWith('pass ')) return bad(`the error names neither the input nor a pass: ${what}`);
      if (/\.tmp\b|\bE[A-Z]{2,}: /.test(what)) return bad(`the error names a temp file or a raw errno: ${what}`);
      return { ...base, verdict: 'refused', detail: lines[0]!.slice(16, 200) };
    }
    if (code !== 0) return bad(`exit ${code}: ${err}`);
    if (written.join() !== 'out.onnx') return bad(`exit 0 and the output folder holds ${written.join(', ') || 'nothing'}`);
    if (!(await ortLoads(m.bytes))) return { ...base, verdict: 'ok-ortbad' };
    return (await ortLoads(output)) ? { ...base, verdict: 'ok' } : bad('exit 0, onnxruntime loads the input but not the output');
  } catch (e) {
    return bad(`threw ${(e as Error)?.stack ?? String(e)}`);
  } finally {
    rmSync(caseDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const seed = Number(arg('seed', '1'));
  const cases = Number(arg('cases', '100'));
  const dir = arg('dir', '');
  if (!dir || !existsSync(dir)) throw new Error('--dir <existing scratch folder> is required');
  const sources = FUZZ_FIXTURES.map((f) => {
    const bytes = new Uint8Array(readFileSync(f));
    return { name: f, bytes, headers: fieldHeaders(bytes) };
  });
  const r = seededRandom(seed);
  for (let id = 0; id < cases; id++) {
    const src = sources[id % sources.length]!;
    const m = (id >> 1) % 2 === 0 ? byteMutant(src.bytes, src.headers, r) : fieldMutant(src.bytes, r);
    const passArgs = PASSES[r.int(PASSES.length)]!;
    // The case is announced first: if it hangs or crashes, the parent knows which one it was.
    process.stdout.write(`${JSON.stringify({ start: id, fixture: src.name, how: m.how, args: passArgs.join(' ') })}\n`);
    const t0 = performance.now();
    const res = await runCase(id, src.name, m, passArgs, dir);
    process.stdout.write(`${JSON.stringify({ ...res, ms: Math.round(performance.now() - t0) })}\n`);
  }
}

await main();
// A mutant must not leave anything (a timer, a session) that keeps the process alive.
setTimeout(() => process.exit(0), 2000).unref();
