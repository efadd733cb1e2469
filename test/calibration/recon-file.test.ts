// The .recon side file's activation error moments (version 3; activation-objective quantized
// and asymmetric): written and read back bit for bit, and a file without them stays version 2
// as before. The statistics are generated (a file-format test; the round trip through a real
// conversion is in reconstruction.test.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/kernels/random.ts';
import type { ActivationShift } from '../../src/passes/calibration/activation-shift.ts';
import type { ReconStats } from '../../src/passes/calibration/gram.ts';
import { readReconFile, writeReconFile } from '../../src/passes/calibration/recon-file.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

const dir = scratchDir('recon-file');
afterAll(() => removeDir(dir));

const rng = seededRandom(5);
const K = 6;
const values = (n: number) => Float64Array.from({ length: n }, () => rng.normal());
const stats: ReconStats = { K, h: values(K * K), mean: values(K), weight: 40 };
const shift: ActivationShift = { dual: values(K), single: values(K), moments: { dual: { K, cross: values(K * K), square: values(K * K) }, single: { K, cross: values(K * K), square: values(K * K) } } };

const versionOf = (path: string) => (JSON.parse(readFileSync(path).subarray(12, 12 + readFileSync(path).readUInt32LE(8)).toString()) as { version: number }).version;

describe('.recon side file: activation error moments', () => {
  it('are written (version 3) and read back bit for bit, per layer and form', () => {
    const path = join(dir, 'with.recon');
    writeReconFile(path, new Map([['a', stats], ['b', stats]]), new Map([['a', shift], ['b', { single: shift.single! }]]));
    expect(versionOf(path)).toBe(3);
    const back = readReconFile(path);
    const a = back.activation!.get('a')!;
    for (const form of ['single', 'dual'] as const) {
      expect(Array.from(a[form]!)).toEqual(Array.from(shift[form]!));
      expect(Array.from(a.moments![form]!.cross)).toEqual(Array.from(shift.moments![form]!.cross));
      expect(Array.from(a.moments![form]!.square)).toEqual(Array.from(shift.moments![form]!.square));
      expect(a.moments![form]!.K).toBe(K);
    }
    expect(back.activation!.get('b')!.moments).toBeUndefined();
    expect(Array.from(back.stats.get('b')!.h)).toEqual(Array.from(stats.h));
  });

  it('without moments the file is version 2, as before', () => {
    const path = join(dir, 'without.recon');
    writeReconFile(path, new Map([['a', stats]]), new Map([['a', { single: shift.single! }]]));
    expect(versionOf(path)).toBe(2);
    expect(readReconFile(path).activation!.get('a')!.moments).toBeUndefined();
  });
});

describe('.recon side file: integrity', () => {
  it('a file changed after it was saved is refused naming it; the saved one reads', () => {
    const path = join(dir, 'checked.recon');
    writeReconFile(path, new Map([['a', stats]]), new Map([['a', { single: shift.single! }]]));
    expect(readReconFile(path).id).toMatch(/^[0-9a-f]{32}$/);
    const bytes = readFileSync(path);
    const start = 12 + bytes.readUInt32LE(8);
    // Four 0xFF bytes in the middle of the data (a user trial's corruption of a statistics file).
    bytes.fill(0xff, start + ((bytes.length - start) >> 1), start + ((bytes.length - start) >> 1) + 4);
    const bad = join(dir, 'corrupted.recon');
    writeFileSync(bad, bytes);
    expect(() => readReconFile(bad)).toThrow(/reconstruction statistics .*corrupted\.recon: is corrupted: its checksum does not match; save it again/);
  });
});
