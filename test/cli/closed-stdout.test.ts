// `convert diff a.onnx b.onnx | head -1`: a reader that closes stdout is not an error. Before
// the fix a write to the closed pipe (output past the 64 KiB pipe buffer, or any output once
// the reader had gone) ended the CLI with Node's unhandled 'error' event (write EPIPE), a
// stack dump and exit 1. The same held for stderr, which a conversion writes as it goes.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quantize } from '../../src/index.ts';
import { BIN, type ChildRun, runCli } from '../helpers/cli-process.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const MODEL = resolve('examples/tiny-arvd-l/model.onnx');
const dir = scratchDir('closed-stdout');
const QUANTIZED = join(dir, 'w8.onnx');
afterAll(() => removeDir(dir));
// Weight-only needs no calibration module; its diff names every changed layer and tensor.
beforeAll(() => quantize(MODEL, QUANTIZED, { aBits: 'none' }));

/** A quiet end: exit 0, nothing on stderr (no EPIPE, no stack). */
function expectQuiet(r: Pick<ChildRun, 'code' | 'stderr'>): void {
  expect(r.stderr).not.toMatch(/EPIPE|\n\s+at /);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

describe('a reader that closes stdout early', () => {
  it.each(['json', 'text'])('diff --format %s | head -n 1: exits 0 without an error', (format) => {
    // A real `head`: a reader in this process takes the whole output before the pipe closes.
    const script = '"$0" "$1" diff "$2" "$3" --format "$4" | head -n 1 >/dev/null; exit "${PIPESTATUS[0]}"';
    const r = spawnSync('bash', ['-c', script, process.execPath, BIN, MODEL, QUANTIZED, format], { encoding: 'utf8' });
    expectQuiet({ code: r.status, stderr: r.stderr });
  });

  it('the diffs overrun the 64 KiB pipe buffer (what makes a write meet the closed pipe)', async () => {
    for (const format of ['json', 'text']) expect((await runCli(['diff', MODEL, QUANTIZED, '--format', format])).stdout.length).toBeGreaterThan(64 * 1024);
  });

  // A reader gone before the first write: every write fails, whatever the output's size.
  for (const args of [['diff', MODEL, QUANTIZED], ['inspect', QUANTIZED], ['passes'], ['--help']]) {
    it(`convert ${args[0]} with stdout already closed: exits 0 without an error`, async () => {
      expectQuiet(await runCli(args, { closeStdout: true }));
    });
  }

  it('a conversion with --stats still writes its model', async () => {
    const out = join(dir, 'dce.onnx');
    const r = await runCli([MODEL, '-o', out, '--pass', 'dce', '--stats', '--quiet'], { closeStdout: true });
    expectQuiet(r);
    expect(existsSync(out)).toBe(true);
  });
});

describe('a reader that closes stderr early', () => {
  it('convert … --verbose 2>&1 | head -n 1: the conversion finishes and writes its model (found by review: write EPIPE, exit 1)', () => {
    const out = join(dir, 'stderr-closed.onnx');
    // head takes the first of the lines the pass logs and exits; the rest meet the closed pipe.
    const script = '"$0" "$1" "$2" -o "$3" --pass minmax --minmax.a-bits none --verbose 2>&1 | head -n 1 >/dev/null; exit "${PIPESTATUS[0]}"';
    const r = spawnSync('bash', ['-c', script, process.execPath, BIN, MODEL, out], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(existsSync(out)).toBe(true);
  });
});
