import type { Logger } from '../log.ts';
import type { CollectProgress } from './collect.ts';

/**
 * Progress lines for the long calibration steps: samples done, the chunk being generated,
 * elapsed time and an estimate of the rest (elapsed ÷ fraction done). Throttled to ten lines a
 * second; the logger decides where they go (rewritten in place on a terminal, hidden under
 * quiet).
 */
export function progressReporter(log: Logger): (p: CollectProgress) => void {
  let last = 0;
  return (p) => {
    const now = performance.now();
    const finished = p.fraction === 1;
    if (now - last < 100 && !finished) return;
    last = now;
    const what = p.phase === 'collect' ? 'calibration' : 'S1 sensitivity';
    const chunk = p.quantizedChunk === undefined ? `chunk ${p.chunk}` : `chunk ${p.quantizedChunk} quantized, at chunk ${p.chunk}`;
    const left = p.fraction > 0 && !finished ? `, ~${seconds((p.elapsedMs * (1 - p.fraction)) / p.fraction)} left` : '';
    log.progress(`${what}: ${p.done}/${p.total} samples, ${chunk}, ${seconds(p.elapsedMs)}${left}`);
  };
}

/** `1.2 s`, `2 min 5 s`. */
export function seconds(ms: number): string {
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
