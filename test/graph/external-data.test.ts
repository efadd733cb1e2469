// External data: writing `<output>.data`, reading it lazily, re-saving without touching the
// input's data file, and the automatic switch for models over the 2 GiB protobuf limit.
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Model } from '../../src/graph/ir/model.ts';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Tensor } from '../../src/graph/ir/tensor.ts';
import { SpillFile } from '../../src/graph/serde/spill-file.ts';
import { EXTERNAL_THRESHOLD_BYTES } from '../../src/graph/serde/external-sink.ts';
import { loadModel, modelTensors, saveModel } from '../../src/graph/serde/io.ts';
import { MIB, type ChildReport } from '../helpers/big-model.ts';
import { runTsChild } from '../helpers/child.ts';
import { listDir, removeDir, scratchDir, sha256, sha256File } from '../helpers/files.ts';
import { FIXTURES, fixture } from '../helpers/fixtures.ts';
import { diffOutputs, feedsFor, runModel } from '../helpers/ort.ts';

const GIB = 2 ** 30;

let dir: string;
beforeAll(() => {
  dir = scratchDir('external-data');
});
afterAll(() => removeDir(dir));

const tensorsOf = (m: Model): Tensor[] => [...modelTensors(m)];

describe.each(FIXTURES.map((f) => [f.name, f] as const))('%s saved with externalData: true', (name, fx) => {
  it('writes <output>.data, a small model file, and runs bit-identically in onnxruntime-node', async () => {
    const out = join(dir, name, 'model.onnx');
    mkdirSync(join(dir, name));
    const original = loadModel(fx.path);
    const big = tensorsOf(original).filter((t) => t.byteLength >= EXTERNAL_THRESHOLD_BYTES);
    const bigBytes = big.reduce((s, t) => s + t.byteLength, 0);
    expect(big.length).toBeGreaterThan(0);

    const r = saveModel(original, out, { externalData: true });
    expect(r.externalDataPath).toBe(`${out}.data`);
    expect(r.externalReason).toBeUndefined(); // asked for, not automatic
    expect(statSync(`${out}.data`).size).toBe(r.externalDataBytes);
    expect(r.externalDataBytes).toBeGreaterThanOrEqual(bigBytes); // plus alignment padding only
    expect(r.externalDataBytes!).toBeLessThan(bigBytes + big.length * 4096);
    // The model file holds only the structure and the tensors under 1 KiB.
    const originalBytes = statSync(fx.path).size;
    expect(r.bytes).toBe(statSync(out).size);
    expect(r.bytes).toBeLessThan(originalBytes - bigBytes + 64 * 1024);
    expect(listDir(join(dir, name))).toEqual(['model.onnx', 'model.onnx.data']);
    console.log(`${name}: model ${originalBytes} B → ${r.bytes} B + data ${r.externalDataBytes} B (${big.length} tensors external)`);

    // Every tensor of at least 1 KiB is external, in model.onnx.data, with the original bytes.
    const reloaded = loadModel(out);
    const before = tensorsOf(original);
    const after = tensorsOf(reloaded);
    expect(after.length).toBe(before.length);
    after.forEach((t, i) => {
      const o = before[i]!;
      expect(t.name).toBe(o.name);
      if (o.byteLength >= EXTERNAL_THRESHOLD_BYTES) {
        expect(t.external?.location).toBe('model.onnx.data');
        expect(t.isInMemory).toBe(false);
      } else expect(t.external).toBeUndefined();
      if (Buffer.compare(t.bytes(), o.bytes()) !== 0) expect.fail(`tensor ${t.name} changed`);
    });

    const feeds = await feedsFor(fx.path, fx.feeds);
    expect(diffOutputs(await runModel(fx.path, feeds), await runModel(out, feeds))).toBeUndefined();
  });
});

describe('a model that reads external data', () => {
  const fx = fixture('stories260K');
  let inDir: string;
  let input: string;
  let inputData: string;
  let hashes: { model: string; data: string };

  beforeAll(() => {
    inDir = join(dir, 'input');
    mkdirSync(inDir);
    input = join(inDir, 'model.onnx');
    inputData = `${input}.data`;
    saveModel(loadModel(fx.path), input, { externalData: true });
    hashes = { model: sha256File(input), data: sha256File(inputData) };
  });

  const unchanged = () => {
    expect(sha256File(input)).toBe(hashes.model);
    expect(sha256File(inputData)).toBe(hashes.data);
    expect(listDir(inDir)).toEqual(['model.onnx', 'model.onnx.data']);
  };

  it('is saved again inline and with external data elsewhere; its data file is untouched', async () => {
    const model = loadModel(input);
    const outDir = join(dir, 'resaved');
    mkdirSync(outDir);
    const inline = saveModel(model, join(outDir, 'inline.onnx'), { externalData: false });
    expect(inline.externalDataPath).toBeUndefined();
    const ext = saveModel(model, join(outDir, 'ext.onnx'), { externalData: true });
    expect(ext.externalDataPath).toBe(join(outDir, 'ext.onnx.data'));
    // The same base name in another folder is another data file: allowed.
    const otherDir = join(dir, 'other');
    mkdirSync(otherDir);
    const same = saveModel(model, join(otherDir, 'model.onnx'), { externalData: true });
    expect(same.externalDataPath).toBe(join(otherDir, 'model.onnx.data'));
    expect(listDir(outDir)).toEqual(['ext.onnx', 'ext.onnx.data', 'inline.onnx']);
    unchanged();

    // Same tensors in the same order: the data files are byte-identical.
    expect(sha256File(ext.externalDataPath!)).toBe(hashes.data);
    expect(sha256File(same.externalDataPath!)).toBe(hashes.data);
    // Inline, it is the plain round trip of the original.
    expect(sha256(readFileSync(inline.path))).toBe(sha256(saveToBytes(loadModel(fx.path), join(outDir, 'plain.onnx'))));

    const feeds = await feedsFor(fx.path, fx.feeds);
    const want = await runModel(fx.path, feeds);
    for (const p of [input, inline.path, ext.path, same.path]) {
      expect(diffOutputs(want, await runModel(p, feeds)), p).toBeUndefined();
    }
    unchanged();
  });

  it('refuses an output whose .data would be the input data file, naming it, and writes nothing', () => {
    const model = loadModel(input);
    const message = /model\.onnx: would overwrite model\.onnx\.data, the external data file the model reads its weights from/;
    expect(() => saveModel(model, input, { externalData: true })).toThrow(message);
    // Spelled differently, still the same file.
    expect(() => saveModel(model, join(inDir, '..', basename(inDir), 'model.onnx'), { externalData: true })).toThrow(message);
    unchanged();
    // Inline, nothing is written to the data file (the model file is another matter: the CLI refuses output = input).
    const copyDir = join(dir, 'inline-over');
    mkdirSync(copyDir);
    copyFileSync(input, join(copyDir, 'model.onnx'));
    copyFileSync(inputData, join(copyDir, 'model.onnx.data'));
    const copy = loadModel(join(copyDir, 'model.onnx'));
    saveModel(copy, join(copyDir, 'model.onnx'), { externalData: false });
    expect(sha256File(join(copyDir, 'model.onnx.data'))).toBe(hashes.data);
  });

  it('reads external tensors on demand, not at load', () => {
    const copyDir = join(dir, 'lazy');
    mkdirSync(copyDir);
    copyFileSync(input, join(copyDir, 'model.onnx'));
    copyFileSync(inputData, join(copyDir, 'model.onnx.data'));
    const model = loadModel(join(copyDir, 'model.onnx'));
    const t = tensorsOf(model).find((x) => x.external)!;
    expect(t.isInMemory).toBe(false);
    const first = t.bytes();
    // Change the tensor's bytes in the file after loading: the next read sees the change.
    const patch = new Uint8Array(t.external!.length).fill(0x5a);
    const fd = openSync(join(copyDir, 'model.onnx.data'), 'r+');
    writeSync(fd, patch, 0, patch.length, t.external!.offset);
    closeSync(fd);
    expect(Buffer.compare(t.bytes(), first)).not.toBe(0);
    expect(Buffer.compare(t.bytes(), patch)).toBe(0);
  });

  it('bytesVia reads external and spilled tensors into one reused buffer, with the bytes bytes() gives', () => {
    const model = loadModel(input);
    const external = tensorsOf(model).filter((x) => x.external);
    expect(external.length).toBeGreaterThan(1);
    const scratch = { bytes: new Uint8Array(0) };
    const largest = Math.max(...external.map((x) => x.byteLength));
    for (const t of external) {
      const via = t.bytesVia(scratch);
      expect(via.buffer).toBe(scratch.bytes.buffer);
      expect(Buffer.compare(via, t.bytes()), t.name).toBe(0);
    }
    // Grown once to the largest tensor, never per tensor.
    expect(scratch.bytes.byteLength).toBe(largest);
    const grown = scratch.bytes;
    external[0]!.bytesVia(scratch);
    expect(scratch.bytes).toBe(grown);
    // A tensor in the spill file, and one in memory (its own bytes, no copy).
    const spilled = Tensor.fromBytes('s', DataType.UINT8, [8], Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8));
    spilled.spillTo(new SpillFile());
    expect(Array.from(spilled.bytesVia(scratch))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(scratch.bytes).toBe(grown);
    const inMemory = Tensor.fromBytes('m', DataType.UINT8, [2], Uint8Array.of(9, 9));
    expect(inMemory.bytesVia(scratch)).toBe(inMemory.bytes());
  });

  it('reports a missing or short data file, naming the model and the data file', () => {
    const copyDir = join(dir, 'broken');
    mkdirSync(copyDir);
    const model = join(copyDir, 'model.onnx');
    copyFileSync(input, model);
    expect(() => loadModel(model)).toThrow(/model\.onnx: tensor .*: external data file model\.onnx\.data is missing/);
    copyFileSync(inputData, `${model}.data`);
    truncateSync(`${model}.data`, statSync(inputData).size - 1);
    expect(() => loadModel(model)).toThrow(/model\.onnx: tensor .*: external data file model\.onnx\.data is too short/);
  });

  it('a save whose model cannot be renamed into place leaves the previous data file as it was', () => {
    // The data file is renamed first: it must not replace the old one when the model's rename
    // then fails (the old model would read the new data). The model's final path is a
    // non-empty folder, which makes that rename fail even as root.
    const outDir = join(dir, 'commit-fails');
    mkdirSync(join(outDir, 'out.onnx'), { recursive: true });
    copyFileSync(inputData, join(outDir, 'out.onnx', 'kept'));
    copyFileSync(inputData, join(outDir, 'out.onnx.data'));
    truncateSync(join(outDir, 'out.onnx.data'), 1000); // not what the save writes
    const before = sha256File(join(outDir, 'out.onnx.data'));
    const out = join(outDir, 'out.onnx');
    const saving = () => saveModel(loadModel(input), out, { externalData: true });
    expect(saving).toThrow(/EISDIR/);
    expect(sha256File(join(outDir, 'out.onnx.data'))).toBe(before);
    expect(saving).toThrow(`${out}: cannot write: it is a folder (EISDIR); the previous files were left as they were`);
    expect(sha256File(join(outDir, 'out.onnx', 'kept'))).toBe(hashes.data);
    expect(listDir(outDir)).toEqual(['out.onnx', 'out.onnx.data']); // no temporary or set-aside file
    unchanged();
  });
});

function saveToBytes(model: Model, path: string): Uint8Array {
  saveModel(model, path);
  const bytes = readFileSync(path);
  rmSync(path);
  return bytes;
}

describe('a generated model over 2 GiB', () => {
  // 33 weights of 64 MiB: 2.06 GiB, just over the limit, generated on demand in a child process.
  const COUNT = 33;
  const WEIGHT_MIB = 64;
  const weightBytes = COUNT * WEIGHT_MIB * MIB;

  it('is saved with external data automatically, and re-saved with peak RSS far below its size', async () => {
    const bigDir = join(dir, 'big');
    mkdirSync(bigDir);
    const first = join(bigDir, 'big.onnx');
    const second = join(bigDir, 'big2.onnx');
    try {
      const t0 = performance.now();
      const gen = await runTsChild<ChildReport>('test/helpers/big-model.ts', ['generate', first, String(COUNT), String(WEIGHT_MIB)]);
      const t1 = performance.now();
      expect(weightBytes).toBeGreaterThan(2 * GIB);
      expect(gen.result.externalReason).toMatch(/exceed the 2 GiB protobuf limit; writing them to big\.onnx\.data/);
      expect(gen.result.externalDataPath).toBe(`${first}.data`);
      expect(statSync(first).size).toBe(gen.result.bytes);
      expect(gen.result.bytes).toBeLessThan(64 * 1024);
      const dataSize = statSync(`${first}.data`).size;
      expect(dataSize).toBeGreaterThan(2 * GIB);
      expect(dataSize).toBe(weightBytes); // 64 MiB weights, 4 KiB-aligned: no padding

      const re = await runTsChild<ChildReport>('test/helpers/big-model.ts', ['resave', first, second]);
      const t2 = performance.now();
      expect(re.checked).toBe(2);
      expect(re.result.externalReason).toMatch(/exceed the 2 GiB protobuf limit; writing them to big2\.onnx\.data/);
      expect(re.result.bytes).toBeLessThan(64 * 1024);
      expect(statSync(`${second}.data`).size).toBe(dataSize);
      const mib = (b: number) => (b / MIB).toFixed(0);
      console.log(
        `over 2 GiB: weights ${mib(weightBytes)} MiB; generate+save ${((t1 - t0) / 1000).toFixed(1)} s, peak RSS ${mib(gen.maxRssBytes)} MiB; ` +
          `load+save ${((t2 - t1) / 1000).toFixed(1)} s, peak RSS ${mib(re.maxRssBytes)} MiB (${((100 * re.maxRssBytes) / weightBytes).toFixed(1)}% of the weights)`,
      );
      expect(re.maxRssBytes).toBeGreaterThan(0);
      expect(re.maxRssBytes).toBeLessThan(GIB);
      expect(gen.maxRssBytes).toBeLessThan(GIB);

      // The re-saved data file holds the same bytes: compare a few weights' ranges.
      const a = loadModel(first);
      const b = loadModel(second);
      const ta = tensorsOf(a);
      const tb = tensorsOf(b);
      expect(tb.map((t) => t.name)).toEqual(ta.map((t) => t.name));
      for (const i of [0, 17, COUNT - 1]) {
        expect(tb[i]!.external!.offset).toBe(ta[i]!.external!.offset);
        if (Buffer.compare(ta[i]!.bytes(), tb[i]!.bytes()) !== 0) expect.fail(`weight ${i} differs after re-saving`);
      }
      // Asked for one file: refused before any weight is read (a scale trial: 5.25 GiB read, then
      // "ModelProto would be … bytes" reported as a bug).
      const one = join(bigDir, 'one.onnx');
      const fresh = loadModel(first);
      expect(() => saveModel(fresh, one, { externalData: false })).toThrow(/one\.onnx: cannot be one file: it would be \d+ bytes, over the 2 GiB protobuf limit of an ONNX file; write it with external data/);
      expect(listDir(bigDir).filter((f) => f.startsWith('one.onnx'))).toEqual([]);
    } finally {
      removeDir(bigDir);
    }
    expect(existsSync(bigDir)).toBe(false);
  }, 180_000);
});

describe('an inline save of a large model (a scale trial: the whole output held twice, 2.81 GiB for a 1.36 GiB variant)', () => {
  // 10 weights of 64 MiB, generated on demand: 640 MiB, one file.
  const COUNT = 10;
  const WEIGHT_MIB = 64;

  it('streams its tensors into the file: peak RSS far below the file (its bytes: proto-codec.test.ts)', async () => {
    const inline = join(dir, 'inline');
    mkdirSync(inline);
    const path = join(inline, 'big.onnx');
    try {
      const gen = await runTsChild<ChildReport>('test/helpers/big-model.ts', ['generate', path, String(COUNT), String(WEIGHT_MIB)]);
      expect(gen.result.externalDataPath).toBeUndefined();
      const size = statSync(path).size;
      expect(size).toBeGreaterThan(COUNT * WEIGHT_MIB * MIB);
      console.log(`inline save of ${(size / MIB).toFixed(0)} MiB: peak RSS ${(gen.maxRssBytes / MIB).toFixed(0)} MiB`);
      // Before: the tensors gathered into the message (640 MiB), then the encoded buffer (640 MiB).
      expect(gen.maxRssBytes).toBeLessThan(size / 2);
      // What onnxruntime reads back: y = x + Σ ReduceSum(w_i).
      const a = loadModel(path);
      expect(tensorsOf(a).map((t) => t.name)).toEqual(Array.from({ length: COUNT }, (_, i) => `w${i}`));
    } finally {
      removeDir(inline);
    }
  }, 180_000);
});
