// Runs a TypeScript script in a fresh `node --import tsx` process (to measure its own peak RSS)
// and parses the JSON line it prints last.
import { spawn } from 'node:child_process';
import { REPO_ROOT } from './files.ts';

export function runTsChild<T>(script: string, args: string[], options: { nodeArgs?: string[] } = {}): Promise<T> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', script, ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) {
        reject(new Error(`${script} ${args.join(' ')} exited with ${code ?? signal}:\n${err.trim()}`));
        return;
      }
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolvePromise(JSON.parse(line) as T);
      } catch {
        reject(new Error(`${script}: no JSON report on stdout:\n${out}\n${err}`));
      }
    });
  });
}
