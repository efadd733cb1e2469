/**
 * `npm run demo`: the bundled example end to end on tiny-arvd-l (see examples/tiny-arvd/demo.ts).
 * Prints the S2 outlier summary, the S1 sensitivity curve and the quality table; writes models,
 * reports, frame strips (rows: fp32, minmax, q-arvd) and an HTML report to `out/demo/`.
 */
import { createLogger } from '../src/passes/log.ts';
import { runDemo } from './tiny-arvd/demo.ts';

const started = performance.now();
const log = createLogger({ write: (line) => process.stderr.write(line + '\n'), tty: process.stderr.isTTY, writeRaw: (t) => process.stderr.write(t) });
const out = 'out/demo';
const result = await runDemo({ out, log });
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
process.stdout.write(`\n${result.table}\n`);
process.stdout.write(
  `\nwrote models, reports, frame strips and report.html to ${out}/ in ${s(performance.now() - started)} ` +
    `(quantization ${s(result.timings.quantize)}, during which fp32 and minmax were evaluated in ${s(result.timings.overlapped)}; ` +
    `then the q-arvd models and latency ${s(result.timings.evaluate)})\n`,
);
