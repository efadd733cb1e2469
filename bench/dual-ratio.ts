// Dual-scale ÷ single-scale at one row count, 1 thread, the order of the models inside a round
// varied: `blocked` runs every minmax model then every q-arvd model each round (the speed
// case's order), `reversed` the other way round, `alternate` flips per round. Reads the models
// bench/dual-profile.ts wrote. docs/dual-scale-speed.md reports what it showed.
//
//   node --import tsx bench/dual-ratio.ts <dir> [rows=1560] [rounds=12] [orders=blocked,reversed,alternate] [forms=qdq-W8A8,...] [suffixes: '' | -fold | ,-fold]
import { loadavg } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { seededRandom } from '../src/kernels/random.ts';
import { WAN_SHAPE } from '../test/helpers/wan-block.ts';

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const [dir = '/tmp/dual-profile', rowsArg = '1560', roundsArg = '12', ordersArg = 'blocked,reversed,alternate', formsArg = 'qdq-W8A8,qoperator-W8A8,qdq-W4,qoperator-W4', suffix = ''] = args;
const rows = Number(rowsArg);
const rounds = Number(roundsArg);
const q = (a: number[], p: number) => { const s = [...a].sort((x, y) => x - y); const i = (s.length - 1) * p; const lo = Math.floor(i); return s[lo]! + (s[Math.ceil(i)]! - s[lo]!) * (i - lo); };

async function main(): Promise<void> {
  const forms = formsArg.split(',');
  const open = (p: string) => ort.InferenceSession.create(p, { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 });
  // suffix: which q-arvd models (`-fold`); a comma list (`,-fold`: without and with) times each
  // against the same minmax model in the same rounds.
  const suffixes = suffix.split(',');
  const single: ort.InferenceSession[] = [];
  const duals: ort.InferenceSession[][] = suffixes.map(() => []);
  for (const f of forms) {
    single.push(await open(join(dir, `minmax-${f}.onnx`)));
    for (let v = 0; v < suffixes.length; v++) duals[v]!.push(await open(join(dir, `q-arvd-${f}${suffixes[v]}.onnx`)));
  }
  const dual = duals.flat();
  const x = new ort.Tensor('float32', seededRandom(5).normalArray(rows * WAN_SHAPE.dim), [rows, WAN_SHAPE.dim]);
  for (const s of [...single, ...dual]) await s.run({ x });
  // CPU time of the process over the call (1 intra-op thread, nothing else running in it): what
  // the call cost, much less moved than wall time by other jobs' load on the shared cores.
  const cpu = process.argv.includes('--wall') ? false : true;
  const time = async (s: ort.InferenceSession) => {
    const t = performance.now();
    const c = process.cpuUsage();
    await s.run({ x });
    const d = process.cpuUsage(c);
    return cpu ? (d.user + d.system) / 1000 : performance.now() - t;
  };
  for (const order of ordersArg.split(',')) {
    const ratios = duals.map(() => forms.map(() => [] as number[]));
    const loads: number[] = [];
    for (let r = 0; r < rounds; r++) {
      loads.push(loadavg()[0]!);
      const dualFirst = order === 'reversed' || (order === 'alternate' && r % 2 === 1);
      const ts = new Map<ort.InferenceSession, number>();
      if (order === 'pairs') {
        // Each form's two models back to back, which of them first flipping per round.
        // With several q-arvd variants the group rotates by one each round, so each takes every position.
        for (let i = 0; i < forms.length; i++) {
          const group = [single[i]!, ...duals.map((d) => d[i]!)];
          const turn = group.length === 2 ? r % 2 : r % group.length;
          for (const s of [...group.slice(turn), ...group.slice(0, turn)]) ts.set(s, await time(s));
        }
      } else {
        for (const s of dualFirst ? [...dual, ...single] : [...single, ...dual]) ts.set(s, await time(s));
      }
      duals.forEach((d, v) => forms.forEach((_, i) => ratios[v]![i]!.push(ts.get(d[i]!)! / ts.get(single[i]!)!)));
    }
    console.log(`${order} (${cpu ? 'CPU time' : 'wall time'}), rows ${rows}, ${rounds} rounds, load ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}:`);
    forms.forEach((f, i) => suffixes.forEach((sfx, v) => { const a = ratios[v]![i]!; console.log(`  ${`${f}${sfx}`.padEnd(21)} q-arvd ÷ minmax ${q(a, 0.5).toFixed(3)} [p25 ${q(a, 0.25).toFixed(3)} p75 ${q(a, 0.75).toFixed(3)}; ${Math.min(...a).toFixed(3)}–${Math.max(...a).toFixed(3)}]`); }));
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
