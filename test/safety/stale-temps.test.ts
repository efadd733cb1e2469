// Temporary files of a run that was killed (SIGKILL, the out-of-memory killer) before it could
// remove them are removed by the next run that writes the same place (found by a user trial:
// a killed folder conversion left its staging folder in onnx/, and calibration's copy of the
// model stayed in /tmp, as large as the model, for good). Leftovers are made here under the id
// of a process that has exited; the conversions run the real CLI in a child process.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_TAG } from '../../src/graph/serde/host-tag.ts';
import { processIsRunning, removeStaleTemps } from '../../src/graph/serde/stale-temps.ts';
import { liveTempFiles, removeTempFiles, trackTemp } from '../../src/graph/serde/temp-files.ts';
import { ReconFileWriter } from '../../src/passes/calibration/recon-file.ts';
import { runCli } from '../helpers/cli-process.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';

let dir: string;
/** The id of a process that has exited. */
let dead: number;
beforeAll(() => {
  dir = scratchDir('stale-temps');
  const child = spawnSync(process.execPath, ['-e', '0']);
  dead = child.pid!;
  expect(processIsRunning(dead)).toBe(false);
});
afterAll(() => removeDir(dir));

/** Makes `names` in `folder` (a name ending in `/` a folder with one file in it). */
function leave(folder: string, names: string[]): void {
  mkdirSync(folder, { recursive: true });
  for (const n of names) {
    if (n.endsWith('/')) {
      mkdirSync(join(folder, n), { recursive: true });
      writeFileSync(join(folder, n, 'augmented.onnx'), 'left');
    } else writeFileSync(join(folder, n), 'left');
  }
}

describe('removeStaleTemps', () => {
  it('removes only names of the pattern whose process is not running, and this process\'s own only when it did not register them', () => {
    const d = join(dir, 'unit');
    const ms = Date.now();
    const t = HOST_TAG;
    leave(d, [`q.onnx.${dead}.${ms}.${t}.tmp`, `q.onnx.${process.pid}.${ms}.${t}.tmp`, `q.onnx.${process.pid}.${ms + 1}.${t}.tmp`, `q.onnx.${process.ppid}.${ms}.${t}.tmp`, `q.onnx.notes.tmp`, `other.onnx.${dead}.${ms}.${t}.tmp`, 'q.onnx']);
    const mine = trackTemp(join(d, `q.onnx.${process.pid}.${ms + 1}.${t}.tmp`));
    const removed = removeStaleTemps(d, new RegExp(`^q\\.onnx\\.(\\d+)\\.\\d+\\.${t}\\.tmp$`));
    // This process's unregistered name: its id repeats from a killed run in the same pid namespace.
    expect(removed.map((p) => p.slice(d.length + 1)).sort()).toEqual([`q.onnx.${dead}.${ms}.${t}.tmp`, `q.onnx.${process.pid}.${ms}.${t}.tmp`].sort());
    expect(readdirSync(d).sort()).toEqual([`other.onnx.${dead}.${ms}.${t}.tmp`, 'q.onnx', `q.onnx.${process.pid}.${ms + 1}.${t}.tmp`, `q.onnx.${process.ppid}.${ms}.${t}.tmp`, 'q.onnx.notes.tmp'].sort());
    mine();
  });

  it('a statistics side file\'s spool is registered, so Ctrl-C removes it (it stayed beside the table)', () => {
    const path = join(dir, 'table.json.recon');
    const writer = new ReconFileWriter(path);
    const spool = liveTempFiles().find((p) => p.startsWith(resolve(path)));
    expect(spool).toMatch(new RegExp(`table\\.json\\.recon\\.\\d+\\.${HOST_TAG}\\.spool$`));
    expect(existsSync(spool!)).toBe(true);
    // What the signal handler does.
    removeTempFiles();
    expect(existsSync(spool!)).toBe(false);
    writer.dispose();
  });
});

describe('the next run removes what a killed one left (CLI in a child process)', () => {
  it('a file conversion: the save\'s temporary files beside the output, calibration\'s copy in TMPDIR', async () => {
    const out = join(dir, 'file-out');
    const tmp = join(dir, 'file-tmp');
    const ms = Date.now();
    const t = HOST_TAG;
    // Another container's or host's (another tag): its process ids mean nothing here (found by review: a run in another pid namespace removed a live run's files).
    const other = t === '00000000' ? '11111111' : '00000000';
    // A quantization's scratch file (.spill) too: the run removes a dead one before it writes its own.
    leave(out, [`q.onnx.${dead}.${ms}.${t}.tmp`, `q.onnx.data.${dead}.${ms}.${t}.tmp`, `q.onnx.data.${dead}.${ms}.${t}.spill`, `q.onnx.data.${process.ppid}.${ms}.${t}.spill`, `q.onnx.${dead}.${ms}.${t}.old`, `keep.${dead}.${ms}.${t}.tmp`, `q.onnx.${dead}.${ms}.${other}.tmp`]);
    leave(tmp, [`qarvd-calib-${t}-${dead}-AbC123/`, `qarvd-s1-${t}-${dead}-xyz789/`, `qarvd-calib-${t}-${process.ppid}-live00/`, 'qarvd-calib-Zq81xa/', `qarvd-calib-${other}-${dead}-AbC123/`]);
    const calib = join(dir, 'calib.mjs');
    writeFileSync(calib, "import * as ort from 'onnxruntime-node';\nexport const samples = 2;\nexport function* feeds(ctx) { yield { feeds: { input_ids: new ort.Tensor('int64', BigInt64Array.from({ length: 8 }, () => BigInt(ctx.random.int(512))), [1, 8]) } }; }\n");
    const r = await runCli([resolve('test/fixtures/stories260K/stories260K.onnx'), '-o', join(out, 'q.onnx'), '--pass', 'q-arvd', '--q-arvd.calib', calib, '--external-data'], { timeoutMs: 120_000, env: { TMPDIR: tmp } });
    expect(r.code, r.stderr).toBe(0);
    // The model's and its data file's leftovers are gone; the set-aside old file (a commit cut
    // short may have left the only copy of the previous output there) and others' names stay.
    expect(readdirSync(out).sort()).toEqual([`keep.${dead}.${ms}.${t}.tmp`, 'q.onnx', 'q.onnx.data', `q.onnx.data.${process.ppid}.${ms}.${t}.spill`, `q.onnx.${dead}.${ms}.${t}.old`, `q.onnx.${dead}.${ms}.${other}.tmp`].sort());
    // The copies of a dead process are gone (S1's too, though this run has no S1); the running
    // process's and an old-style name stay.
    expect(readdirSync(tmp).filter((f) => f.startsWith('qarvd-')).sort()).toEqual([`qarvd-calib-${t}-${process.ppid}-live00`, 'qarvd-calib-Zq81xa', `qarvd-calib-${other}-${dead}-AbC123`].sort());
  });

  it('a folder conversion: the staging folder in onnx/', async () => {
    const folder = join(dir, 'hf');
    cpSync(resolve('test/fixtures/stories260K-hf'), folder, { recursive: true });
    const ms = Date.now();
    const t = HOST_TAG;
    leave(join(folder, 'onnx'), [`.convert-${dead}-${ms}-${t}.staging/`, `.convert-${process.ppid}-${ms}-${t}.staging/`, `.convert-${dead}-${ms}-${t === '00000000' ? '11111111' : '00000000'}.staging/`]);
    const r = await runCli([folder, '--pass', 'q-arvd', '--variant', 'q4', '--q-arvd.w-bits', '4', '--q-arvd.a-bits', 'none'], { timeoutMs: 120_000 });
    expect(r.code, r.stderr).toBe(0);
    const left = readdirSync(join(folder, 'onnx'));
    expect(left).not.toContain(`.convert-${dead}-${ms}-${t}.staging`);
    expect(left).toContain(`.convert-${process.ppid}-${ms}-${t}.staging`);
    expect(left.filter((f) => f.startsWith('.convert-'))).toHaveLength(2);
    expect(left).toContain('model_q4.onnx');
  });
});
