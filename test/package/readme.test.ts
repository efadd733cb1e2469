// Every `npx convert …` line of README.md's shell blocks, run as written (issue 16: "examples
// are tests"), in a folder that holds what the lines name: model.onnx (stories260K), the
// README's own calib.mjs and my-plugin.mjs blocks, ./model (the stories260K-hf folder) and
// prompts.txt. `npx convert` is the checkout's bin/convert.js here; test/package/install.test.ts
// runs the installed package's `npx convert --help`, a weight-only line and the "Use from code"
// examples. A line the README adds is picked up without changing this file.
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli-process.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { readmeBlock, readmeBlockWith, readmeConvertLines } from '../helpers/readme.ts';

// Inside the checkout (test-output/) so that calib.mjs resolves onnxruntime-node.
const dir = scratchDir('readme');
afterAll(() => removeDir(dir));

const lines = readmeConvertLines();
copyFileSync(resolve('test/fixtures/stories260K/stories260K.onnx'), join(dir, 'model.onnx'));
cpSync(resolve('test/fixtures/stories260K-hf'), join(dir, 'model'), { recursive: true });
copyFileSync(resolve('examples/hf-text-generation/prompts.txt'), join(dir, 'prompts.txt'));
writeFileSync(join(dir, 'calib.mjs'), readmeBlock('calib.mjs'));
writeFileSync(join(dir, 'my-plugin.mjs'), readmeBlock('my-plugin.mjs'));

describe("README's convert commands, as written", () => {
  it('finds the commands of every CLI section (so that a changed block format cannot empty this test)', () => {
    const joined = lines.join('\n');
    for (const s of ['npx convert --help', '--q-arvd.a-bits none', '--q-arvd.calib ./calib.mjs', 'npx convert passes', 'npx convert diff', '--exit-code', 'npx convert inspect', '--variant q8']) expect(joined).toContain(s);
  });

  it.each(lines)('%s', async (line) => {
    const args = line.split(/\s+/).slice(2);
    // `diff a.onnx b.onnx`: two models that differ, the input and the W4A8 output of the lines before.
    if (args.includes('a.onnx')) {
      copyFileSync(join(dir, 'model.onnx'), join(dir, 'a.onnx'));
      copyFileSync(join(dir, 'model.q.onnx'), join(dir, 'b.onnx'));
    }
    const r = await runCli(args, { cwd: dir, timeoutMs: 110_000 });
    // --exit-code: 1 when the graphs differ, as the README says.
    expect(r.code, `${line}\n${r.stderr}`).toBe(args.includes('--exit-code') ? 1 : 0);
    for (const flag of ['-o', '--html', '--q-arvd.report']) {
      const i = args.indexOf(flag);
      if (i >= 0) expect(existsSync(join(dir, args[i + 1]!)), `${args[i + 1]} written`).toBe(true);
    }
    // A folder line names the variant file it writes in its comment (onnx/model_quantized.onnx …).
    const variant = args[args.indexOf('--variant') + 1];
    if (args.includes('--variant')) expect(existsSync(join(dir, 'model/onnx', variant === 'q8' ? 'model_quantized.onnx' : `model_${variant}.onnx`))).toBe(true);
  });

  it("loads the q8 variant with the README's transformers.js lines (after the folder lines above)", () => {
    // The snippet as written (its import included), then one call of the generator.
    const snippet = readmeBlockWith("pipeline('text-generation'");
    expect(snippet).toContain("import { env, pipeline } from '@huggingface/transformers'");
    writeFileSync(
      join(dir, 'load.mjs'),
      `${snippet}\nconst [out] = await generator('Once upon a time', { max_new_tokens: 4, do_sample: false });\nconsole.log(out.generated_text);\n`,
    );
    const r = spawnSync(process.execPath, ['load.mjs'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Once upon a time\S*( \S+){1,4}/);
  });

  it("runs the plugin block with `convert --plugin ./my-plugin.mjs`", async () => {
    const r = await runCli(['model.onnx', '-o', 'model.plugin.onnx', '--plugin', './my-plugin.mjs', '--pass', 'drop-doc-strings', '--stats'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/drop-doc-strings \(plugin my-plugin\)/);
    expect(r.stdout + r.stderr).toMatch(/removed\s+\d+\s+doc strings removed/);
  });
});
