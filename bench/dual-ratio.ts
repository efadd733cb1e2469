// Dual-scale ÷ single-scale at one row count, 1 thread, the order of the models inside a round
// varied: `blocked` runs every minmax model then every q-arvd model each round (the speed
// case's order), `reversed` the other way round, `alternate` flips per round. Reads the models
// bench/dual-profile.ts wrote. docs/dual-scale-speed.md reports what it showed.
//
//   node --import tsx bench/dual-ratio.ts <dir> [rows=1560] [rounds=12] [orders=blocked,reversed,alternate] [forms=qdq-W8A8,...]
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
  const single: ort.InferenceSession[] = [];
  const dual: ort.InferenceSession[] = [];
  for (const f of forms) {
    single.push(await open(join(dir, `minmax-${f}.onnx`)));
    dual.push(await open(join(dir, `q-arvd-${f}${suffix}.onnx`)));
  }
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
    const ratios = forms.map(() => [] as number[]);
    const loads: number[] = [];
    for (let r = 0; r < rounds; r++) {
      loads.push(loadavg()[0]!);
      const dualFirst = order === 'reversed' || (order === 'alternate' && r % 2 === 1);
      const ts = new Map<ort.InferenceSession, number>();
      if (order === 'pairs') {
        // Each form's two models back to back, which of them first flipping per round.
        for (let i = 0; i < forms.length; i++) for (const s of r % 2 ? [dual[i]!, single[i]!] : [single[i]!, dual[i]!]) ts.set(s, await time(s));
      } else {
        for (const s of dualFirst ? [...dual, ...single] : [...single, ...dual]) ts.set(s, await time(s));
      }
      forms.forEach((_, i) => ratios[i]!.push(ts.get(dual[i]!)! / ts.get(single[i]!)!));
    }
    console.log(`${order} (${cpu ? 'CPU time' : 'wall time'}), rows ${rows}, ${rounds} rounds, load ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}:`);
    forms.forEach((f, i) => console.log(`  ${f.padEnd(16)} q-arvd ÷ minmax ${q(ratios[i]!, 0.5).toFixed(3)} [p25 ${q(ratios[i]!, 0.25).toFixed(3)} p75 ${q(ratios[i]!, 0.75).toFixed(3)}; ${Math.min(...ratios[i]!).toFixed(3)}–${Math.max(...ratios[i]!).toFixed(3)}]`));
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
