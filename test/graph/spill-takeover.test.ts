// A spill file beside the output (src/graph/serde/spill-file.ts) is laid out as the output's
// data file would be; the save renames it into place when the model's tensors start with its
// own, in its order, and otherwise copies them as before. Either way the files are the bytes an
// in-memory save writes. Real model: stories260K, its weights spilled by hand in the orders
// each case needs (the quantization passes spill in one order only: test/scale/streaming.test.ts).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../src/graph/ir/model.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { EXTERNAL_THRESHOLD_BYTES } from '../../src/graph/serde/data-layout.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { SpillPlace } from '../../src/graph/serde/spill-file.ts';
import { listDir, removeDir, scratchDir } from '../helpers/files.ts';
import { fixture } from '../helpers/fixtures.ts';

const STORIES = fixture('stories260K').path;
let dir: string;
let reference: Buffer[];
beforeAll(() => {
  dir = scratchDir('spill-takeover');
  const out = join(dir, 'reference', 'model.onnx');
  mkdirSync(join(dir, 'reference'));
  saveModel(loadModel(STORIES), out, { externalData: true });
  reference = [readFileSync(out), readFileSync(`${out}.data`)];
});
afterAll(() => removeDir(dir));

/** The model's tensors that go to a data file, in initializer order. */
const large = (m: Model): Tensor[] => [...m.graph.initializers.values()].map((v) => v.initializer!).filter((t) => t.byteLength >= EXTERNAL_THRESHOLD_BYTES);

/** Loads stories260K with its large tensors in memory, spills `pick` of them into a spill file beside `<case>/model.onnx.data`, saves, releases. */
function saveSpilled(name: string, pick: (tensors: Tensor[]) => Tensor[], extra?: (m: Model) => void) {
  const folder = join(dir, name);
  mkdirSync(folder);
  const out = join(folder, 'model.onnx');
  const model = loadModel(STORIES);
  for (const t of large(model)) t.setBytes(t.bytes().slice());
  const place = new SpillPlace(`${out}.data`);
  const file = place.open();
  for (const t of pick(large(model))) expect(t.spillTo(file)).toBe(true);
  extra?.(model);
  const spillPath = file.path;
  expect(spillPath, 'named beside the output').toMatch(/model\.onnx\.data\.\d+\.\d+\.[0-9a-f]{8}\.spill$/);
  const saved = saveModel(model, out, { externalData: true });
  place.release();
  return { out, folder, saved, model, spillPath: spillPath! };
}

/** Whether `out` and its data file hold the reference's bytes (compared as buffers: a deep equality of 1 MB takes seconds). */
const sameAsReference = (out: string) => [readFileSync(out), readFileSync(`${out}.data`)].map((b, i) => Buffer.compare(b, reference[i]!) === 0);

describe('a spill file beside the output', () => {
  it('is renamed into place when the model starts with its tensors in its order: the bytes of an in-memory save, nothing left behind', () => {
    const { out, folder, saved, model, spillPath } = saveSpilled('in-order', (ts) => ts);
    expect(saved.externalDataTakenOver).toBeGreaterThan(0);
    expect(saved.externalDataTakenOver).toBe(saved.externalDataBytes);
    expect(sameAsReference(out)).toEqual([true, true]);
    expect(existsSync(spillPath)).toBe(false);
    expect(listDir(folder).sort()).toEqual(['model.onnx', 'model.onnx.data']);
    // The tensors still read from the file, now the output's data file: a second save copies them.
    mkdirSync(join(folder, 'again'));
    const again = join(folder, 'again', 'model.onnx');
    const second = saveModel(model, again, { externalData: true });
    expect(second.externalDataTakenOver).toBeUndefined();
    expect(sameAsReference(again)).toEqual([true, true]);
  });

  it('takes the first tensors over and appends the rest after them', () => {
    const { out, saved } = saveSpilled('prefix', (ts) => ts.slice(0, 3));
    expect(saved.externalDataTakenOver).toBeGreaterThan(0);
    expect(saved.externalDataTakenOver!).toBeLessThan(saved.externalDataBytes!);
    expect(sameAsReference(out)).toEqual([true, true]);
  });

  for (const [name, pick, extra] of [
    ['in another order', (ts: Tensor[]) => [...ts].reverse(), undefined],
    ['after a tensor it does not hold', (ts: Tensor[]) => ts.slice(1), undefined],
    ['holding a tensor the model does not have', (ts: Tensor[]) => ts, (m: Model) => Tensor.fromBytes('gone', DataType.UINT8, [4096], new Uint8Array(4096)).spillTo(large(m)[0]!.spilled!.file)],
  ] as const) {
    it(`${name}: is copied as before (the bytes of an in-memory save) and removed`, () => {
      const { out, folder, saved, spillPath } = saveSpilled(name.replace(/ /g, '-'), pick, extra);
      expect(saved.externalDataTakenOver).toBeUndefined();
      expect(sameAsReference(out)).toEqual([true, true]);
      expect(existsSync(spillPath)).toBe(false);
      expect(listDir(folder).sort()).toEqual(['model.onnx', 'model.onnx.data']);
    });
  }

  it('holding a tensor the model dropped inside the padding before a large one: is copied (found by review: offsets alone matched)', () => {
    // An extra 1,040-byte tensor first (so the next one starts off a 4 KiB boundary), then the
    // dropped 1 KiB one, then 1 MiB: in the spill file the 1 MiB tensor starts at 4096, where the
    // save without the dropped one puts it too, and its bytes would be left in the padding.
    const folder = join(dir, 'padding');
    mkdirSync(folder);
    const out = join(folder, 'model.onnx');
    const build = () => {
      const m = loadModel(STORIES);
      for (const t of large(m)) t.setBytes(t.bytes().slice());
      const [first, big] = [m.graph.createInitializer('first', (n) => Tensor.fromBytes(n, DataType.UINT8, [1040], new Uint8Array(1040).fill(1))), m.graph.createInitializer('big', (n) => Tensor.fromBytes(n, DataType.UINT8, [1 << 20], new Uint8Array(1 << 20).fill(2)))];
      m.graph.moveInitializersFirst([first, big]);
      return m;
    };
    const model = build();
    const place = new SpillPlace(`${out}.data`);
    const file = place.open();
    const [first, big, ...rest] = large(model);
    expect([first!.name, big!.name]).toEqual(['first', 'big']);
    first!.spillTo(file);
    Tensor.fromBytes('dropped', DataType.UINT8, [1024], new Uint8Array(1024).fill(3)).spillTo(file);
    big!.spillTo(file);
    expect(big!.spilled!.offset).toBe(4096);
    for (const t of rest) t.spillTo(file);
    const saved = saveModel(model, out, { externalData: true });
    place.release();
    expect(saved.takeOverRefused).toMatch(/comes where the scratch file holds another/);
    mkdirSync(join(folder, 'memory'));
    const expected = join(folder, 'memory', 'model.onnx');
    saveModel(build(), expected, { externalData: true });
    expect(Buffer.compare(readFileSync(`${out}.data`), readFileSync(`${expected}.data`))).toBe(0);
    expect(listDir(folder).sort()).toEqual(['memory', 'model.onnx', 'model.onnx.data']);
  });

  it('in another folder than the output is copied, and stays until released', () => {
    const place = new SpillPlace(join(dir, 'elsewhere.onnx.data'));
    const file = place.open();
    const model = loadModel(STORIES);
    for (const t of large(model)) {
      t.setBytes(t.bytes().slice());
      t.spillTo(file);
    }
    mkdirSync(join(dir, 'other'));
    const out = join(dir, 'other', 'model.onnx');
    const saved = saveModel(model, out, { externalData: true });
    expect(saved.externalDataTakenOver).toBeUndefined();
    expect(sameAsReference(out)).toEqual([true, true]);
    expect(existsSync(file.path!)).toBe(true);
    const path = file.path!;
    place.release();
    expect(existsSync(path)).toBe(false);
  });
});
