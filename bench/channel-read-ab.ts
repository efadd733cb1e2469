// Old (Gather) against new (Expand + GatherElements) channel reads inside the whole q-arvd
// model: two models of the same form, profiled in one process, runs alternating, 1 thread; per
// run, the summed kernel time of the nodes that read the channels and of all nodes.
// docs/dual-scale-speed.md reports what it showed.
//
//   node --import tsx bench/channel-read-ab.ts <old.onnx> <new.onnx> [rows=1560] [runs=15]
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { seededRandom } from '../src/kernels/random.ts';
import { WAN_SHAPE } from '../test/helpers/wan-block.ts';

const [oldPath, newPath, rowsArg = '1560', runsArg = '15'] = process.argv.slice(2);
const READS = new Set(['Gather', 'GatherElements', 'Expand', 'Shape', 'Slice', 'Concat']);
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

async function main(): Promise<void> {
  if (!oldPath || !newPath) throw new Error('usage: channel-read-ab.ts <old.onnx> <new.onnx> [rows] [runs]');
  const rows = Number(rowsArg);
  const runs = Number(runsArg);
  const dir = mkdtempSync(join(tmpdir(), 'channel-read-ab-'));
  try {
    const x = new ort.Tensor('float32', seededRandom(5).normalArray(rows * WAN_SHAPE.dim), [rows, WAN_SHAPE.dim]);
    const sessions = await Promise.all([oldPath, newPath].map((p, i) => ort.InferenceSession.create(p, { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3, enableProfiling: true, profileFilePrefix: join(dir, `m${i}`) })));
    for (const s of sessions) await s.run({ x });
    const load0 = loadavg()[0]!;
    for (let r = 0; r < runs; r++) for (const s of r % 2 ? [...sessions].reverse() : sessions) await s.run({ x });
    for (const s of sessions) s.endProfiling();
    const result = sessions.map((_, i) => {
      const file = readdirSync(dir).find((f) => f.startsWith(`m${i}`) && f.endsWith('.json'))!;
      const events = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { cat: string; name: string; dur: number; args?: { op_name?: string } }[];
      const reads: number[] = [];
      const total: number[] = [];
      let run = { reads: 0, total: 0 };
      // Node events of a run come before its model_run event, which closes it.
      for (const e of events) {
        if (e.cat === 'Session' && e.name === 'model_run') {
          reads.push(run.reads);
          total.push(run.total);
          run = { reads: 0, total: 0 };
        }
        if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
        run.total += e.dur / 1000;
        if (READS.has(e.args?.op_name ?? '')) run.reads += e.dur / 1000;
      }
      return { reads: reads.slice(-runs), total: total.slice(-runs) };
    });
    console.log(`rows ${rows}, ${runs} runs each, alternating, load ${load0.toFixed(1)}–${loadavg()[0]!.toFixed(1)}; kernel ms per run, median [min–max]:`);
    ['old', 'new'].forEach((name, i) => {
      const { reads, total } = result[i]!;
      console.log(`  ${name}: channel reads ${median(reads).toFixed(2)} [${Math.min(...reads).toFixed(2)}–${Math.max(...reads).toFixed(2)}], all nodes ${median(total).toFixed(1)} [${Math.min(...total).toFixed(1)}–${Math.max(...total).toFixed(1)}]`);
    });
    for (const s of sessions) await s.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
