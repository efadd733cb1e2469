// Folder mode moves every staged variant into onnx/ at once: a move that fails part way
// leaves every old variant file as it was (found by a safety trial: a mix of old and new
// variants, and an error naming the staging folder), and the staging folder is a registered
// temporary so that Ctrl-C removes it. The graphs are tiny synthetic ones (Relu → Neg); a
// variant path that is a non-empty folder makes the last move fail, even as root.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { saveModel } from '../../src/graph/serde/io.ts';
import { liveTempFiles } from '../../src/graph/serde/temp-files.ts';
import { FolderError } from '../../src/hf/errors.ts';
import { convertFolder, planVariant, scanModelFolder, VARIANT_METADATA_KEY } from '../../src/hf/folder.ts';
import { silentLogger } from '../../src/passes/log.ts';
import { tinyModel } from '../helpers/tiny-model.ts';
import { cli, hashTree } from './helpers.ts';

const root = mkdtempSync(join(tmpdir(), 'qarvd-folder-commit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A model folder with two fp32 graphs, a.onnx and b.onnx. */
function modelFolder(name: string): { dir: string; onnx: string } {
  const dir = join(root, name);
  const onnx = join(dir, 'onnx');
  mkdirSync(onnx, { recursive: true });
  writeFileSync(join(dir, 'config.json'), '{}');
  for (const base of ['a', 'b']) saveModel(tinyModel(), join(onnx, `${base}.onnx`));
  return { dir, onnx };
}

describe('convertFolder commits every variant or none', () => {
  it('a move that fails part way leaves the old variants as they were, and names the variant file', async () => {
    const { dir, onnx } = modelFolder('fails');
    // The old variant of a (with a data file the new one, inline, would drop), and b's variant path a folder.
    const old = tinyModel();
    old.metadata.set(VARIANT_METADATA_KEY, 'v');
    old.metadata.set('written', 'by an earlier run'); // not what this run writes
    saveModel(old, join(onnx, 'a_v.onnx'));
    writeFileSync(join(onnx, 'a_v.onnx_data'), 'old data of a');
    mkdirSync(join(onnx, 'b_v.onnx'));
    writeFileSync(join(onnx, 'b_v.onnx', 'keep'), 'kept');
    const before = hashTree(dir);
    const plan = planVariant(scanModelFolder(dir), 'v', {}, true);
    const error = await convertFolder(plan, { externalData: 'auto', log: silentLogger, runPasses: async () => {} }).catch((e: unknown) => e);
    expect(hashTree(dir)).toEqual(before); // no new a_v.onnx, its data file back, no staging folder
    expect(error).toBeInstanceOf(FolderError);
    expect((error as Error).message).toBe(`${join(onnx, 'b_v.onnx')}: cannot move the v variant into place: it is a folder (EISDIR); no variant was written, the previous files were left as they were`);
  });

  it('the staging folder is a registered temporary while the graphs run, and is gone after', async () => {
    const { dir, onnx } = modelFolder('staging');
    const seen: string[][] = [];
    const plan = planVariant(scanModelFolder(dir), 'v', {}, false);
    await convertFolder(plan, {
      externalData: 'auto',
      log: silentLogger,
      runPasses: async () => {
        seen.push(liveTempFiles().filter((p) => p.startsWith(onnx)));
      },
    });
    // While b's passes run, a's finished variant waits in the staging folder: Ctrl-C must remove it.
    expect(seen).toHaveLength(2);
    for (const live of seen) expect(live).toEqual([expect.stringMatching(/\/onnx\/\.convert-\d+-\d+-[0-9a-f]{8}\.staging$/)]);
    expect(existsSync(seen[0]![0]!)).toBe(false);
    expect(liveTempFiles().filter((p) => p.startsWith(onnx))).toEqual([]);
    expect(readdirSync(onnx).sort()).toEqual(['a.onnx', 'a_v.onnx', 'b.onnx', 'b_v.onnx']);
  });
});

describe('the load hint for a folder of several graphs', () => {
  it('a name of its own is said to be unloadable (model_file_name renames one graph), not hinted for the first graph', async () => {
    // Found by review: the hint named encoder_model_mine only, and transformers.js's Seq2Seq
    // loading ignores model_file_name (session_config.js: encoder_model, decoder_model_merged).
    const dir = join(root, 's2s');
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    writeFileSync(join(dir, 'config.json'), '{}');
    for (const base of ['encoder_model', 'decoder_model_merged']) saveModel(tinyModel(), join(dir, 'onnx', `${base}.onnx`));
    const r = await cli(dir, '--pass', 'dce', '--variant', 'mine');
    expect(r.code, r.err).toBe(0);
    expect(r.err).toContain(`warning: 'mine' is not a transformers.js dtype, and transformers.js cannot load a name of your own for this folder's 2 graphs (decoder_model_merged.onnx, encoder_model.onnx)`);
    expect(r.err).toContain('convert with a dtype name (--variant q8, q4, int8)');
    expect(r.err).not.toContain('model_file_name:');
  });

  it("a pass's warning names the graph it is about (a review: an exclude pattern matching only the other graph's layers was said to match nothing, without saying where)", async () => {
    const dir = join(root, 'two-graphs');
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    writeFileSync(join(dir, 'config.json'), '{}');
    copyFileSync(resolve('test/fixtures/stories260K/stories260K.onnx'), join(dir, 'onnx', 'encoder_model.onnx'));
    copyFileSync(resolve('examples/tiny-arvd/model.onnx'), join(dir, 'onnx', 'decoder_model_merged.onnx'));
    const r = await cli(dir, '--pass', 'q-arvd', '--variant', 'q4', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none', '--q-arvd.exclude', '/blocks.0/w1/*');
    expect(r.code, r.err).toBe(0);
    const warned = r.err.split('\n').filter((l) => l.includes("exclude pattern '/blocks.0/w1/*' matches no linear layer"));
    expect(warned, r.err).toHaveLength(1);
    expect(warned[0]).toContain('decoder_model_merged.onnx: ');
  });
});
