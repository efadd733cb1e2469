// Linear layers inside If/Loop bodies are refused with the owning node named, never left float
// silently, wherever their weight is defined. The graphs are synthetic
// (test/helpers/subgraph-models.ts): no bundled real model has layers in subgraphs.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../src/graph/ir/model.ts';
import { saveModel } from '../../src/graph/serde/io.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { expectRefused } from '../helpers/refusal.ts';
import { ifModel, loopModel } from '../helpers/subgraph-models.ts';

let dir: string;
let out: string;
beforeAll(() => {
  dir = scratchDir('subgraph-layers');
  out = join(dir, 'out');
  mkdirSync(out);
});
afterAll(() => removeDir(dir));

/** Saves the synthetic model in its own folder, checks onnxruntime runs it, returns the path. */
async function saved(name: string, m: Model): Promise<string> {
  const folder = join(dir, name.replace(/[^a-z]+/g, '-'));
  mkdirSync(folder);
  const file = join(folder, 'model.onnx');
  saveModel(m, file);
  await ort.InferenceSession.create(file); // the test graph itself is valid ONNX
  return file;
}

describe('layers inside subgraphs are refused naming the node (synthetic graphs)', () => {
  it.each(['parent, shared by both branches', 'parent, one per branch', 'branch'] as const)('If, weight in the %s', async (home) => {
    const model = await saved(`if ${home}`, ifModel(home));
    const says = /pass q-arvd \(plugin q-arvd\): node \/model\/If \(If\): linear layers inside If\/Loop subgraphs are not quantized yet; its subgraphs hold 2 \(e\.g\. \/model\/then\/MatMul\)/;
    for (const args of [['--q-arvd.a-bits', 'none'], ['--q-arvd.a-bits', 'none', '--q-arvd.w-bits', '4']]) {
      await expectRefused([model, '-o', join(out, 'q.onnx'), '--pass', 'q-arvd', ...args], says, { input: join(model, '..'), output: out });
    }
  });

  it.each(['parent', 'body'] as const)('Loop, weight in the %s', async (home) => {
    const model = await saved(`loop ${home}`, loopModel(home));
    const says = /node \/model\/Loop \(Loop\): linear layers inside If\/Loop subgraphs are not quantized yet; its subgraphs hold 1 \(e\.g\. \/body\/MatMul\)/;
    await expectRefused([model, '-o', join(out, 'q.onnx'), '--pass', 'q-arvd', '--q-arvd.a-bits', 'none'], says, { input: join(model, '..'), output: out });
  });

  it('excluding the branch layers by name lets the main graph through (nothing silently skipped)', async () => {
    const model = await saved('if excluded', ifModel('parent, shared by both branches'));
    const { cli } = await import('../helpers/cli.ts');
    const r = await cli(model, '-o', join(dir, 'excluded.onnx'), '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.exclude', '/model/then/*,/model/else/*');
    expect(r.code, r.err).toBe(0);
    // The patterns match the branches' layers: no warning that they match nothing.
    expect(r.err).not.toContain('matches no linear layer');
  });
});
