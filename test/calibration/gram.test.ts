// Gram statistics for reconstruction: onnxruntime's XᵀX against a float64 loop, the α
// combination of chunks, a Gram matrix built from a sample of the calls (gram-stride)
// scaled to the rows it stands for, and α-weighted sums against the per-chunk combination. Small generated matrices: the arithmetic is the subject.
import { describe, expect, it } from 'vitest';
import { GramSessions, GramStats, productWeight, type ReconStats } from '../../src/passes/calibration/gram.ts';
import { GramWorker, WEIGHTED_SUM } from '../../src/passes/calibration/gram-worker.ts';
import { seededRandom } from '../../src/kernels/random.ts';

function gramF64(x: Float32Array, K: number): Float64Array {
  const rows = x.length / K;
  const g = new Float64Array(K * K);
  for (let r = 0; r < rows; r++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) g[i * K + j] += x[r * K + i]! * x[r * K + j]!;
  return g;
}

describe('Gram statistics', () => {
  it('onnxruntime computes XᵀX within float32 rounding of a float64 loop', async () => {
    const K = 24;
    const rng = seededRandom(3);
    const x = rng.normalArray(300 * K);
    const sessions = new GramSessions(1);
    try {
      const got = await sessions.product(x, K);
      const want = gramF64(x, K);
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-4 * (1 + Math.abs(want[i]!)));
    } finally {
      await sessions.dispose();
    }
  });

  it('combines chunks with α and scales a sampled Gram matrix to all of its chunk\'s rows', () => {
    const K = 3;
    const a = Float32Array.from([1, 2, 3, 4, 5, 6]);
    const b = Float32Array.from([-1, 0, 2]);
    const s = new GramStats(K);
    // Chunk 0: two calls, only the first enters the Gram matrix (stride 2), both enter the mean.
    s.addRows(0, a);
    s.addProduct(0, Float32Array.from(gramF64(a, K)), 2);
    s.addRows(0, a);
    // Chunk 1: one call, both.
    s.addRows(1, b);
    s.addProduct(1, Float32Array.from(gramF64(b, K)), 1);
    const { h, mean, weight } = s.combine([0, 1], [2, 0.5]);
    const ga = gramF64(a, K);
    const gb = gramF64(b, K);
    for (let i = 0; i < K * K; i++) expect(h[i]).toBeCloseTo(2 * 2 * ga[i]! + 0.5 * gb[i]!, 10);
    expect(weight).toBe(2 * 4 + 0.5 * 1);
    const sumA = [5, 7, 9];
    for (let k = 0; k < K; k++) expect(mean[k]).toBeCloseTo((2 * 2 * sumA[k]! + 0.5 * b[k]!) / 8.5, 12);
  });

  it('keeps even and odd samples apart: the whole is their sum, each fold its own H, μ and weight', () => {
    const K = 2;
    const even = Float32Array.from([1, 2, 3, -1]);
    const odd = Float32Array.from([0, 4]);
    const s = new GramStats(K);
    s.addRows(0, even, 0);
    s.addProduct(0, Float32Array.from(gramF64(even, K)), 2, 0);
    s.addRows(0, odd, 1);
    s.addProduct(0, Float32Array.from(gramF64(odd, K)), 1, 1);
    const whole = s.combine([0], [3]);
    expect(whole.folds).toBeDefined();
    const [a, b] = whole.folds!;
    const ge = gramF64(even, K);
    const go = gramF64(odd, K);
    for (let i = 0; i < K * K; i++) {
      expect(a.h[i]).toBeCloseTo(3 * ge[i]!, 12);
      expect(b.h[i]).toBeCloseTo(3 * go[i]!, 12);
      expect(whole.h[i]).toBeCloseTo(a.h[i]! + b.h[i]!, 12);
    }
    expect([a.weight, b.weight, whole.weight]).toEqual([6, 3, 9]);
    expect([...a.mean]).toEqual([2, 0.5]);
    expect([...b.mean]).toEqual([0, 4]);
    expect(whole.mean[0]).toBeCloseTo(4 / 3, 12);
    expect(whole.mean[1]).toBeCloseTo(5 / 3, 12);
    // One sample (only fold 0 saw rows): no folds to cross-validate with.
    const one = new GramStats(K);
    one.addRows(0, even, 0);
    one.addProduct(0, Float32Array.from(ge), 2, 0);
    expect(one.combine([0], [1]).folds).toBeUndefined();
  });

  it('the worker thread sums the same bits as products summed on the main thread, per input, chunk and fold', async () => {
    // Two widths, several chunks and both folds, calls of different row counts, interleaved as
    // the collect step posts them; a small queue bound so that add() has to wait for the worker.
    const rng = seededRandom(11);
    const widths = [16, 40];
    const calls = Array.from({ length: 24 }, (_, i) => ({ input: i % 2, chunk: (i >> 2) % 3, fold: ((i >> 1) % 2) as 0 | 1, rows: 5 + ((i * 7) % 23) }));
    const data = calls.map((c) => rng.normalArray(c.rows * widths[c.input]!));
    const sessions = new GramSessions(1);
    const want = widths.map((K) => new GramStats(K));
    const worker = GramWorker.open(widths, { threads: 1, maxQueuedBytes: 4096 });
    try {
      for (const [i, c] of calls.entries()) {
        const K = widths[c.input]!;
        want[c.input]!.addProduct(c.chunk, await sessions.product(data[i]!, K), c.rows, c.fold);
        await worker.add(c.input, c.chunk, c.fold, data[i]!, K);
        // The queue stays bounded: at most the bound and the call just posted wait.
        expect(worker.queuedBytes).toBeGreaterThanOrEqual(0);
        expect(worker.queuedBytes).toBeLessThanOrEqual(4096 + data[i]!.byteLength);
      }
      const sums = await worker.finish();
      expect(sums.length).toBe(2 * 3 * 2);
      for (const s of sums) {
        const expected = want[s.input]!.chunk(s.chunk, s.fold)!;
        expect(s.gramRows).toBe(expected.gramRows);
        expect(Buffer.from(s.gram.buffer).equals(Buffer.from(expected.gram.buffer))).toBe(true);
      }
      // The caller's rows were copied, not taken.
      expect(data.every((d) => d.length > 0)).toBe(true);
    } finally {
      await sessions.dispose();
    }
  });

  it('α-weighted sums (one per fold) give the per-chunk combination: μ and weights bit for bit, H up to summation order', async () => {
    // Calls interleaved across 3 chunks and both folds, one in two of each chunk's calls in the
    // Gram (gram-stride 2); the weighted path weights each product by its chunk's α and row counts.
    const K = 12;
    const rng = seededRandom(5);
    const calls = Array.from({ length: 36 }, (_, i) => ({ chunk: i % 3, fold: ((i >> 3) % 2) as 0 | 1, rows: 3 + ((i * 5) % 11) }));
    const data = calls.map((c) => rng.normalArray(c.rows * K).map((v, j) => v + (j % K === 4 ? 3 : 0)));
    const seen = new Map<number, number>();
    const sampled = calls.map((c) => {
      const n = seen.get(c.chunk) ?? 0;
      seen.set(c.chunk, n + 1);
      return n % 2 === 0;
    });
    const counts = new Map<string, { rows: number; gramRows: number }>();
    calls.forEach((c, i) => {
      const key = `${c.chunk}|${c.fold}`;
      const n = counts.get(key) ?? { rows: 0, gramRows: 0 };
      n.rows += c.rows;
      if (sampled[i]) n.gramRows += c.rows;
      counts.set(key, n);
    });
    async function both(chunks: number[], alpha: number[]): Promise<[ReconStats, ReconStats]> {
      const perChunk = new GramStats(K);
      const weighted = new GramStats(K, true);
      const a = GramWorker.open([K], { threads: 1 });
      const b = GramWorker.open([K], { threads: 1 });
      for (const [i, c] of calls.entries()) {
        if (!chunks.includes(c.chunk)) continue;
        perChunk.addRows(c.chunk, data[i]!, c.fold);
        weighted.addRows(c.chunk, data[i]!, c.fold);
        if (!sampled[i]) continue;
        await a.add(0, c.chunk, c.fold, data[i]!, K);
        weighted.countProduct(c.chunk, c.rows, c.fold);
        await b.add(0, WEIGHTED_SUM, c.fold, data[i]!, K, productWeight(alpha[chunks.indexOf(c.chunk)]!, counts.get(`${c.chunk}|${c.fold}`)!));
      }
      for (const s of await a.finish()) perChunk.setProducts(s.chunk, s.fold, s.gram, s.gramRows);
      for (const s of await b.finish()) {
        expect(s.chunk).toBe(WEIGHTED_SUM);
        weighted.setWeighted(s.fold, s.gram);
      }
      return [perChunk.combine(chunks, alpha), weighted.combine(chunks, alpha)];
    }
    const parts = (s: ReconStats) => [s, ...s.folds!];
    const [want, got] = await both([0, 1, 2], [0.5, 1.7, 0.8]);
    expect(got.folds).toBeDefined();
    let maxRel = 0;
    for (const [p, q] of parts(want).map((w, i) => [w, parts(got)[i]!] as const)) {
      expect(q.weight).toBe(p.weight);
      expect(Buffer.from(q.mean.buffer).equals(Buffer.from(p.mean.buffer))).toBe(true);
      for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) maxRel = Math.max(maxRel, Math.abs(q.h[i * K + j]! - p.h[i * K + j]!) / Math.sqrt(p.h[i * K + i]! * p.h[j * K + j]!));
    }
    // 12 products per fold: the reordering costs a few units of 2⁻⁵³ of the scale.
    expect(maxRel).toBeLessThan(1e-14);
    // One chunk with α = 1 and every call in the Gram: the same sums in the same order, every bit.
    sampled.fill(true);
    for (const n of counts.values()) n.gramRows = n.rows;
    const [one, oneWeighted] = await both([1], [1]);
    for (const [p, q] of parts(one).map((w, i) => [w, parts(oneWeighted)[i]!] as const)) expect(Buffer.from(q.h.buffer).equals(Buffer.from(p.h.buffer))).toBe(true);
  });

  it('close() while the worker is busy: the queued products are skipped, the thread ends, nothing is left running', async () => {
    const K = 512;
    const worker = GramWorker.open([K], { threads: 1 });
    const rows = new Float32Array(256 * K).fill(0.25);
    for (let i = 0; i < 12; i++) await worker.add(0, 0, 0, rows, K);
    // Terminating the thread with a product in flight could abort the process (SIGABRT); close
    // lets that one finish, skips the rest, and the worker then refuses to give sums.
    await worker.close();
    await expect(worker.finish()).rejects.toThrow(/worker/);
  });

  it('a product the worker cannot compute fails the collection with onnxruntime\'s reason', async () => {
    const worker = GramWorker.open([4], { threads: 1 });
    // 6 values are not rows of 4: onnxruntime refuses the tensor in the worker.
    await worker.add(0, 0, 0, new Float32Array(6), 4);
    await expect(worker.finish()).rejects.toThrow(/Gram products \(calibration's worker thread\) failed: .+/);
  });
});
