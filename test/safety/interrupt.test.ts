// Ctrl-C (SIGINT) while a conversion is busy on this thread — q-arvd quantizing with
// --q-arvd.threads 1, the save — must still mean: no output, no temporary files, the usual
// line, exit 130 (found by a safety trial: the signal waited until the handler was gone, and
// the run wrote its output and exited 0). The model is synthetic: one Wan2.1-shaped block
// (seeded weights, ~130 MB in a data file), big enough for the pass to take a second or two.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { saveModel } from '../../src/graph/serde/io.ts';
import { runCli } from '../helpers/cli-process.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { tinyModel } from '../helpers/tiny-model.ts';
import { wanBlock } from '../helpers/wan-block.ts';

let dir: string;
let input: string;
beforeAll(() => {
  dir = scratchDir('interrupt');
  for (const d of ['in', 'out', 'tmp']) mkdirSync(join(dir, d));
  input = join(dir, 'in', 'wan.onnx');
  saveModel(wanBlock({ outliers: true }), input, { externalData: true });
});
afterAll(() => removeDir(dir));

/**
 * A plugin whose pass sends its process SIGINT and keeps the thread busy: the signal is
 * pending when the passes end, and nothing yields to the event loop before the output is
 * committed unless the save waits for it.
 */
function interruptingPlugin(): string {
  const plugin = join(dir, 'in', 'interrupt-self.mjs');
  writeFileSync(plugin, "export default { name: 'interrupter', version: '1.0.0', passes: [{ name: 'interrupt-self', summary: 'sends itself SIGINT', options: {}, statistics: {}, run() { process.kill(process.pid, 'SIGINT'); const t = Date.now(); while (Date.now() - t < 200); return { modified: false, stats: {} }; } }] };\n");
  return plugin;
}

describe('a signal after the output is committed', () => {
  it('between the commit and the end of the run: the line says the output is complete, exit 0 (it said "not written", exit 143)', () => {
    const tiny = join(dir, 'in', 'tiny-commit.onnx');
    saveModel(tinyModel(), tiny);
    const out = join(dir, 'committed.onnx');
    // convertFile commits the output; the signal then comes while the CLI's scope is still open.
    const script = `import { convertFile } from ${JSON.stringify(resolve('src/api/convert.ts'))};
import { cleanupOnSignal } from ${JSON.stringify(resolve('src/graph/serde/temp-files.ts'))};
await cleanupOnSignal((t) => process.stderr.write(t), async () => {
  await convertFile(${JSON.stringify(tiny)}, ${JSON.stringify(out)}, []);
  process.kill(process.pid, 'SIGTERM');
  await new Promise((r) => setTimeout(r, 5000));
});
process.exit(7);`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.stderr).toContain(`convert: interrupted (SIGTERM) after ${out} was written, complete; exit 0`);
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(out)).toBe(true);
  });
});

describe('a signal during synchronous work (CLI in a child process)', () => {
  it('SIGINT while q-arvd runs on the main thread: exit 130, nothing written', async () => {
    const out = join(dir, 'out');
    let sent = false;
    const r = await runCli([input, '-o', join(out, 'q.onnx'), '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.threads', '1'], {
      timeoutMs: 30_000,
      env: { TMPDIR: join(dir, 'tmp') },
      // The pass's first line: the layers' analysis and quantization, all on this thread, follow.
      onStderr: (text, child) => {
        if (!sent && /weight-only without calibration data/.test(text)) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    expect(sent, r.stderr).toBe(true);
    expect(r.stderr).toMatch(/convert: interrupted \(SIGINT\); the model was not written, temporary files removed/);
    expect(r.code, r.stderr).toBe(130);
    expect(readdirSync(out)).toEqual([]);
    // Heard between layers, not only once the pass is done.
    expect(r.stderr).not.toMatch(/q-arvd W8 qdq:/);
    expect(readdirSync(join(dir, 'tmp')).filter((f) => f.startsWith('qarvd-'))).toEqual([]);
    expect(existsSync(input)).toBe(true);
  });

  it('a signal that arrives after the last pass, before the save is committed: exit 130, nothing written', async () => {
    const tiny = join(dir, 'in', 'tiny.onnx');
    saveModel(tinyModel(), tiny);
    const out = join(dir, 'out-late');
    mkdirSync(out);
    const r = await runCli([tiny, '-o', join(out, 't.onnx'), '--plugin', interruptingPlugin(), '--pass', 'interrupt-self'], { timeoutMs: 30_000, env: { TMPDIR: join(dir, 'tmp') } });
    expect(readdirSync(out)).toEqual([]);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/^convert: interrupted \(SIGINT\); the model was not written, temporary files removed/);
  });

  it('the same in folder mode: no variant moved into onnx/, no staging folder left, exit 130', async () => {
    const folder = join(dir, 'folder');
    mkdirSync(join(folder, 'onnx'), { recursive: true });
    writeFileSync(join(folder, 'config.json'), '{}');
    saveModel(tinyModel(), join(folder, 'onnx', 'model.onnx'));
    const r = await runCli([folder, '--plugin', interruptingPlugin(), '--pass', 'interrupt-self', '--variant', 'mine'], { timeoutMs: 30_000, env: { TMPDIR: join(dir, 'tmp') } });
    expect(readdirSync(join(folder, 'onnx'))).toEqual(['model.onnx']);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/\nconvert: interrupted \(SIGINT\); the model was not written, temporary files removed[^\n]*\n$/);
  });
});
