// Starts test/fuzz/run-cases.ts in a child process and collects its verdicts; a case that
// runs longer than `caseTimeoutMs` (a hang) or a child that dies (a signal, a crash) becomes
// a failure naming the case. Shared by the fuzz test and `npm run bench -- fuzz`.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/files.ts';
import type { CaseResult } from './run-cases.ts';

/** What a fuzz run found: every verdict, and how the child ended. */
export interface FuzzRun {
  results: CaseResult[];
  /** Problems outside any verdict: a hang, a crash, a non-zero exit, stderr noise. */
  failures: string[];
  counts: Record<CaseResult['verdict'], number>;
  ms: number;
}

/** Runs `cases` seeded cases in a child process (without VITEST, as a user would run). */
export function runFuzz(options: { seed: number; cases: number; dir: string; caseTimeoutMs?: number }): Promise<FuzzRun> {
  const env: Record<string, string | undefined> = { ...process.env };
  delete env.VITEST;
  const script = join(REPO_ROOT, 'test', 'fuzz', 'run-cases.ts');
  const args = ['--import', 'tsx', script, '--seed', String(options.seed), '--cases', String(options.cases), '--dir', options.dir];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const results: CaseResult[] = [];
    const failures: string[] = [];
    let running: string | undefined;
    let buffer = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        failures.push(`hang: no verdict within ${options.caseTimeoutMs ?? 30_000} ms for ${running ?? 'startup'}`);
        child.kill('SIGKILL');
      }, options.caseTimeoutMs ?? 30_000);
    };
    arm();
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const msg = JSON.parse(line) as CaseResult & { start?: number };
        arm();
        if (msg.start !== undefined) running = line;
        else {
          results.push(msg);
          running = undefined;
        }
      }
    });
    // onnxruntime warns on stderr about old opsets in mutated models; keep it for a crash report.
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal || code !== 0) failures.push(`the child ended with ${signal ?? `exit ${code}`} while running ${running ?? '(between cases)'}: ${stderr.split('\n').filter((l) => !/onnxruntime/.test(l)).slice(-5).join(' | ')}`);
      const counts = { ok: 0, 'ok-ortbad': 0, refused: 0, bad: 0 };
      for (const r of results) counts[r.verdict]++;
      resolve({ results, failures, counts, ms: performance.now() - started });
    });
  });
}
