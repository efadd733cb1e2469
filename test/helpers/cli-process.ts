// Runs bin/convert.js in a real child process: what in-process tests cannot show (an exit
// code set by process.exit, a hang, a signal, what is left in the temp folder).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './files.ts';

export const BIN = join(REPO_ROOT, 'bin', 'convert.js');

/** How a child CLI run ended. `timedOut`: it was killed after `timeoutMs`. */
export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

/**
 * Runs `convert <args>` in a child process without the VITEST variable (so the CLI behaves
 * as for a user: no default --verify), with `env` added; kills it after `timeoutMs`.
 * `onStderr` sees the child's stderr as it comes (to send it a signal at the right moment).
 * `closeStdout`: the reading end of its stdout is closed at once, before the child writes (a
 * reader that has gone, as `| head` once it has its line). `signalAfter`: a signal sent after
 * that many milliseconds (for a phase that prints nothing to wait for).
 */
export function runCli(
  args: string[],
  options: { timeoutMs?: number; env?: Record<string, string>; cwd?: string; onStderr?: (text: string, child: { kill: (s: NodeJS.Signals) => void }) => void; closeStdout?: boolean; signalAfter?: { signal: NodeJS.Signals; ms: number } } = {},
): Promise<ChildRun> {
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  delete env.VITEST;
  delete env.VITEST_WORKER_ID;
  delete env.VITEST_POOL_ID;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 60_000);
    const signalTimer = options.signalAfter && setTimeout(() => child.kill(options.signalAfter!.signal), options.signalAfter.ms);
    if (options.closeStdout) child.stdout.destroy();
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      options.onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signalTimer) clearTimeout(signalTimer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started, timedOut });
    });
  });
}
