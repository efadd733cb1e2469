// The search's buffer pool: best fit, whole buffers back from views, the memory cap.
import { describe, expect, it } from 'vitest';
import { BufferPool, poolFor } from './buffers.ts';

describe('BufferPool', () => {
  it('reuses the smallest kept buffer that fits (at most twice the request), as a view', () => {
    const pool = new BufferPool();
    const a = pool.take(100);
    const b = pool.take(300);
    pool.give([a, b, a]);
    const c = pool.take(90);
    expect(c.buffer).toBe(a.buffer);
    expect(c.length).toBe(90);
    expect(pool.take(100).buffer).not.toBe(b.buffer); // 300 is more than twice 100
    pool.give([c]); // a view of a: the whole of a comes back
    expect(pool.take(100).buffer).toBe(a.buffer);
  });

  it('drops what it keeps when full, and keeps one pool per owner', () => {
    const pool = new BufferPool(1000);
    const a = new Float32Array(200);
    const b = new Float32Array(100);
    pool.give([a]);
    pool.give([b]); // 1200 bytes > 1000: a is dropped
    expect(pool.take(150)).not.toBe(a);
    expect(pool.take(100)).toBe(b);
    const owner = {};
    expect(poolFor(owner)).toBe(poolFor(owner));
    expect(poolFor(undefined)).not.toBe(poolFor(undefined));
  });
});
