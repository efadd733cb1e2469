/**
 * Float32 scratch buffers of the scale search, handed back and reused: the products,
 * quantized rows and gathered rows of one layer serve the next layers (the sizes differ with
 * the layer's width and the input's distinct rows, so a buffer serves any request up to its
 * size, as a view of its first values). Fewer new typed arrays means fewer garbage
 * collections, which V8 starts after every few tens of MiB of new array memory.
 */
export class BufferPool {
  private free: Float32Array[] = [];
  private bytes = 0;

  /** @param maxBytes the pool keeps at most this much memory (beyond it, the buffers kept are dropped for the garbage collector). */
  constructor(private readonly maxBytes = 8 << 20) {}

  /** `length` values: the smallest kept buffer that holds them (at most twice as long; its old values still in it), or a new one. */
  take(length: number): Float32Array {
    let at = -1;
    for (let i = 0; i < this.free.length; i++) {
      const n = this.free[i]!.length;
      if (n >= length && n <= 2 * length && (at < 0 || n < this.free[at]!.length)) at = i;
    }
    if (at < 0) return new Float32Array(length);
    const b = this.free[at]!;
    this.free[at] = this.free[this.free.length - 1]!;
    this.free.pop();
    this.bytes -= b.byteLength;
    return b.length === length ? b : b.subarray(0, length);
  }

  /** Hands back buffers nothing reads any more (each whole buffer once; views of a buffer's start give the whole buffer). */
  give(buffers: Iterable<Float32Array>): void {
    const seen = new Set<ArrayBufferLike>();
    for (const v of buffers) {
      if (v.byteOffset !== 0 || seen.has(v.buffer)) continue;
      seen.add(v.buffer);
      const b = v.byteLength === v.buffer.byteLength ? v : new Float32Array(v.buffer);
      if (b.byteLength === 0 || b.byteLength > this.maxBytes) continue;
      // Full: the sizes kept are likely an earlier input's, so they make room.
      if (this.bytes + b.byteLength > this.maxBytes) {
        this.free = [];
        this.bytes = 0;
      }
      this.free.push(b);
      this.bytes += b.byteLength;
    }
  }
}

/** One pool per search (keyed by an object that lives as long as it), so nothing is kept after it. */
const pools = new WeakMap<object, BufferPool>();

/** The pool of the search that `owner` belongs to (a new, unshared pool without an owner). */
export function poolFor(owner: object | undefined): BufferPool {
  if (!owner) return new BufferPool();
  let pool = pools.get(owner);
  if (!pool) pools.set(owner, (pool = new BufferPool()));
  return pool;
}
