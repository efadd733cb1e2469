// External data is untrusted input: a model's `location` must not make convert read any file
// outside the model's folder (through a symlink too), nor open a folder, FIFO or device.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from '../../src/graph/proto/codec.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { fixture } from '../helpers/fixtures.ts';
import { expectRefused } from '../helpers/refusal.ts';

const STORIES = fixture('stories260K').path;
let dir: string;
let out: string;
beforeAll(() => {
  dir = scratchDir('external-safety');
  out = join(dir, 'out');
  mkdirSync(out);
});
afterAll(() => removeDir(dir));

type Proto = Record<string, any>;

/**
 * Saves stories260K with external data in `<dir>/<name>/model.onnx`, then points the first
 * external tensor at `location` (the others keep model.onnx.data). Returns the model path and
 * the tensor's name.
 */
function withLocation(name: string, location: string): { model: string; tensor: string } {
  const folder = join(dir, name);
  mkdirSync(folder);
  const model = join(folder, 'model.onnx');
  saveModel(loadModel(STORIES), model, { externalData: true });
  const proto = decodeModel(readFileSync(model)) as Proto;
  const t = (proto.graph.initializer as Proto[]).find((i) => Number(i.data_location) === 1)!;
  for (const e of t.external_data as Proto[]) if (e.key === 'location') e.value = location;
  writeFileSync(model, encodeModel(proto));
  return { model, tensor: t.name };
}

describe('external data locations', () => {
  it('refuses a symlink inside the folder that points outside it, naming the tensor and the location', async () => {
    const secret = join(dir, 'secret.bin');
    writeFileSync(secret, Buffer.alloc(1 << 20, 0x5a));
    const { model, tensor } = withLocation('symlink-out', 'w.bin');
    symlinkSync(secret, join(model, '..', 'w.bin'));
    const says = new RegExp(`model\\.onnx: tensor ${tensor}: external data location w\\.bin points outside the model's folder \\(through a symlink\\)`);
    expect(() => loadModel(model)).toThrow(says);
    await expectRefused([model, '-o', join(out, 'a.onnx')], says, { input: join(model, '..'), output: out });
    await expectRefused([model, '-o', join(out, 'b.onnx'), '--pass', 'q-arvd', '--q-arvd.a-bits', 'none'], says, { input: join(model, '..'), output: out });
  });

  it('follows a symlink that stays inside the folder', () => {
    const { model } = withLocation('symlink-in', 'alias.bin');
    symlinkSync('model.onnx.data', join(model, '..', 'alias.bin'));
    const m = loadModel(model);
    const saved = join(out, 'inside.onnx');
    saveModel(m, saved);
    expect(loadModel(saved).graph.nodeCount).toBe(m.graph.nodeCount);
    renameSync(saved, join(dir, 'inside.onnx')); // keep the output folder empty for the other tests
  });

  it('reads a Hugging Face hub cache snapshot, whose files are links into the repository\'s blobs/, and nothing else through links (a user trial: every hub download with external data was refused)', async () => {
    // What huggingface_hub writes: <cache>/models--org--name/snapshots/<revision>/<path> → ../../(…)/blobs/<hash>.
    const repo = join(dir, 'hub', 'models--org--tiny');
    const onnx = join(repo, 'snapshots', '0123abc', 'onnx');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(onnx, { recursive: true });
    const staged = join(dir, 'hub-staged.onnx');
    saveModel(loadModel(STORIES), staged, { externalData: true, dataFileName: 'model.onnx.data' });
    renameSync(staged, join(repo, 'blobs', 'aaa'));
    renameSync(join(dir, 'model.onnx.data'), join(repo, 'blobs', 'bbb'));
    symlinkSync('../../../blobs/aaa', join(onnx, 'model.onnx'));
    symlinkSync('../../../blobs/bbb', join(onnx, 'model.onnx.data'));
    const m = loadModel(join(onnx, 'model.onnx'));
    expect(m.graph.nodeCount).toBe(loadModel(STORIES).graph.nodeCount);
    // A link from the snapshot to anywhere else is still refused: another repository's blobs, or the repository's own other folders.
    const other = join(dir, 'hub', 'models--org--other', 'blobs');
    mkdirSync(other, { recursive: true });
    for (const [name, target] of [['other-repo', join(other, 'bbb')], ['refs', join(repo, 'refs-bbb')]] as const) {
      renameSync(join(onnx, 'model.onnx.data'), join(dir, `hub-data-${name}`));
      writeFileSync(target, readFileSync(join(repo, 'blobs', 'bbb')));
      symlinkSync(target, join(onnx, 'model.onnx.data'));
      expect(() => loadModel(join(onnx, 'model.onnx')), name).toThrow(/location model\.onnx\.data points outside the model's folder \(through a symlink\); refusing to read it \(copy the folder with its links followed, cp -rL/);
      rmSync(join(onnx, 'model.onnx.data'));
      renameSync(join(dir, `hub-data-${name}`), join(onnx, 'model.onnx.data'));
    }
  });

  it('refuses a symlinked folder on the way out, and .. and absolute locations', async () => {
    const a = withLocation('folder-link', 'sub/w.bin');
    mkdirSync(join(dir, 'elsewhere'));
    writeFileSync(join(dir, 'elsewhere', 'w.bin'), Buffer.alloc(1 << 20));
    symlinkSync(join(dir, 'elsewhere'), join(a.model, '..', 'sub'));
    expect(() => loadModel(a.model)).toThrow(/location sub\/w\.bin points outside the model's folder/);
    const b = withLocation('dotdot', '../secret.bin');
    expect(() => loadModel(b.model)).toThrow(/location \.\.\/secret\.bin must stay inside the model's folder/);
    const c = withLocation('absolute', join(dir, 'secret.bin'));
    expect(() => loadModel(c.model)).toThrow(/must stay inside the model's folder/);
  });

  it('refuses location "." (the folder itself) with a message, not EISDIR', async () => {
    const { model, tensor } = withLocation('dot', '.');
    const says = new RegExp(`tensor ${tensor}: external data location \\. is a folder, not a data file`);
    const err = await expectRefused([model, '-o', join(out, 'c.onnx')], says, { input: join(model, '..'), output: out });
    expect(err).not.toMatch(/EISDIR/);
  });

  it('refuses a FIFO without opening it (opening would block until a writer comes)', async () => {
    const { model, tensor } = withLocation('fifo', 'pipe.bin');
    execFileSync('mkfifo', [join(model, '..', 'pipe.bin')]);
    const says = new RegExp(`tensor ${tensor}: external data location pipe\\.bin is not a regular file \\(a FIFO, socket or device\\)`);
    await expectRefused([model, '-o', join(out, 'd.onnx')], says, { input: join(model, '..'), output: out });
  });

  it('refuses a symlink to a device inside the folder', async () => {
    const { model } = withLocation('device', 'zero.bin');
    symlinkSync('/dev/zero', join(model, '..', 'zero.bin'));
    expect(() => loadModel(model)).toThrow(/location zero\.bin points outside the model's folder/);
    expect(existsSync(join(out, 'e.onnx'))).toBe(false);
  });
});
