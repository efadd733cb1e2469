// Runs the `convert` CLI in-process and captures what it prints; shared by the CLI, report
// and Hugging Face tests.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import type { CliIO } from '../../src/cli/io.ts';
import { run } from '../../src/cli/main.ts';

/** The exit code and everything written to stdout and stderr. */
export async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIO = { out: (t) => void (out += t), err: (t) => void (err += t), tty: false };
  const code = await run(args, io);
  return { code, out, err };
}

/**
 * Compares `actual` with the golden file `<samples>/<sample>/<file>`; with `UPDATE_GOLDEN=1`
 * rewrites it instead (review the change before committing it).
 */
export function golden(samples: string, sample: string, file: string, actual: string): void {
  const p = join(samples, sample, file);
  if (process.env.UPDATE_GOLDEN) {
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, actual);
    return;
  }
  expect(existsSync(p), `${p} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
  expect(actual).toBe(readFileSync(p, 'utf8'));
}
