// Checks the promise every bad input gets: exit 1, one line naming the culprit, no output
// written, and the input folder byte-for-byte unchanged.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { cli } from './cli.ts';
import { sha256File } from './files.ts';

/** Every regular file below `dir` with its hash (symlinks and special files by kind only). */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir, { recursive: true }) as string[]) {
    const p = join(dir, name);
    let st;
    try {
      st = statSync(p);
    } catch {
      out[name] = 'dangling';
      continue;
    }
    out[name] = st.isFile() ? sha256File(p) : st.isDirectory() ? 'dir' : 'special';
  }
  return out;
}

/**
 * Runs the CLI in-process and expects a refusal: exit 1, exactly one line
 * `convert: error: …` matching `says`, nothing on stdout, the input folder unchanged and
 * nothing new in the output folder.
 */
export async function expectRefused(args: string[], says: RegExp, folders: { input: string; output: string }): Promise<string> {
  const before = [snapshot(folders.input), snapshot(folders.output)];
  const r = await cli(...args);
  expect(r.err).toMatch(/^convert: error: /);
  expect(r.err.trimEnd().split('\n'), r.err).toHaveLength(1);
  expect(r.err).toMatch(says);
  expect(r.code).toBe(1);
  expect(r.out).toBe('');
  expect(snapshot(folders.input)).toEqual(before[0]);
  expect(snapshot(folders.output)).toEqual(before[1]);
  return r.err;
}
