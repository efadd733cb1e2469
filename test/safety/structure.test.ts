// The structural checks that run without --verify, before the first pass and after the last:
// a cyclic graph, a node without op_type, an input defined nowhere, a domain not imported,
// two values or two nodes of a graph with one name.
// The graphs are small synthetic ones, broken on purpose through the protobuf.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from '../../src/graph/proto/codec.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { structuralIssues } from '../../src/graph/structure.ts';
import { PassFailure, PassManager } from '../../src/passes/manager.ts';
import { definePass, type Pass } from '../../src/passes/pass.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { fixture } from '../helpers/fixtures.ts';
import { expectRefused } from '../helpers/refusal.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

let dir: string;
let out: string;
beforeAll(() => {
  dir = scratchDir('structure');
  out = join(dir, 'out');
  mkdirSync(out);
});
afterAll(() => removeDir(dir));

const tiny = tinyModel;

type Proto = Record<string, any>;

/** Saves `tiny()` as `<name>/model.onnx` after `edit` changed its protobuf. */
function broken(name: string, edit: (p: Proto) => void): string {
  const folder = join(dir, name);
  mkdirSync(folder);
  const file = join(folder, 'model.onnx');
  saveModel(tiny(), file);
  const p = decodeModel(readFileSync(file)) as Proto;
  edit(p);
  writeFileSync(file, encodeModel(p));
  return file;
}

const cases: Record<string, { edit: (p: Proto) => void; says: RegExp }> = {
  'a cycle': {
    // relu reads neg's output: Relu(y) → r → Neg → y.
    edit: (p) => void (p.graph.node[0].input = ['y']),
    says: /model\.onnx: is invalid before any pass ran: \[order\] graph tiny has a cycle: 2 node\(s\) depend, directly or not, on their own outputs \(first: node relu/,
  },
  'an empty op_type': {
    edit: (p) => void (p.graph.node[1].op_type = ''),
    says: /graph tiny node neg(\b.*)? has no op_type/,
  },
  // Found by a plugin author's trial: a pass renaming a value or a node by hand wrote a model onnxruntime refuses.
  'two values with one name': {
    edit: (p) => void (p.graph.node[0].output = ['x'], p.graph.node[1].input = ['x']),
    says: /graph tiny node relu.* output %x: value name "x" is defined twice in graph tiny/,
  },
  'two nodes with one name': {
    edit: (p) => void (p.graph.node[1].name = 'relu'),
    says: /graph tiny node relu.*: node name "relu" is used by another node of graph tiny/,
  },
  'a domain the model does not import': {
    edit: (p) => void (p.graph.node[1].domain = 'com.example'),
    says: /graph tiny node neg.* is from domain "com\.example", which the model does not import/,
  },
};

describe('structural checks without --verify', () => {
  it.each(Object.keys(cases))('refuse an input with %s, naming the file and the node', async (name) => {
    const c = cases[name]!;
    const file = broken(name.replace(/\W+/g, '-'), c.edit);
    expect(structuralIssues(loadModel(file)).length).toBeGreaterThan(0);
    for (const pass of [[], ['--pass', 'dce']]) {
      await expectRefused([file, '-o', join(out, 'x.onnx'), '--no-verify', ...pass], c.says, { input: join(file, '..'), output: out });
    }
  });

  it('accept nodes merely out of order (onnxruntime sorts them; --verify reports them)', async () => {
    const file = broken('out-of-order', (p) => void p.graph.node.reverse());
    expect(structuralIssues(loadModel(file))).toEqual([]);
    const { cli } = await import('../helpers/cli.ts');
    const ok = await cli(file, '-o', join(out, 'sorted-or-not.onnx'), '--no-verify');
    expect(ok.code, ok.err).toBe(0);
    rmSync(join(out, 'sorted-or-not.onnx'));
    await expectRefused([file, '-o', join(out, 'x.onnx'), '--verify'], /\[order\] graph tiny node neg.* input 0 uses %r before its producer relu/, { input: join(file, '..'), output: out });
  });

  it('find nothing in the bundled real models', () => {
    for (const name of ['stories260K', 'stories260K-hf', 'tiny-arvd', 'PP-OCRv4-rec', 'hello_deepa']) {
      expect(structuralIssues(loadModel(fixture(name).path)), name).toEqual([]);
    }
  });

  it('catch a pass that leaves a dangling input, after the last pass', async () => {
    const breaker = definePass({
      name: 'breaker',
      summary: 'removes the Relu by force, leaving Neg reading a value nobody produces',
      options: {},
      statistics: {},
      run: (m) => {
        m.graph.remove(m.graph.nodes().find((n) => n.opType === 'Relu')!, { force: true });
        return { modified: true, stats: {} };
      },
    }) as Pass;
    const manager = new PassManager([{ pass: breaker, plugin: 'test' }], { verify: false });
    const err = await manager.run(tiny()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PassFailure);
    expect((err as Error).message).toMatch(/^pass breaker \(plugin test\): left an invalid graph: \[order\] graph tiny node neg.* input 0 %r is not defined in its scope/);
  });
});
