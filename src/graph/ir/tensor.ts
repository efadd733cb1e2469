import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { ModelFileError } from '../serde/errors.ts';
import type { SpillFile } from '../serde/spill-file.ts';
import { DataType, type DataTypeId, dtypeName, elementCount, rawByteLength } from './dtype.ts';

/** Where an external tensor's bytes live: a file, and a byte range in it. */
export interface ExternalLocation {
  /** Absolute path of the data file. */
  path: string;
  /** The location string as recorded in the model (relative to the model file). */
  location: string;
  offset: number;
  length: number;
}

/**
 * How a tensor's bytes are obtained. Weights are read only when asked for, so that a pass
 * touching one tensor at a time never holds every weight of a large model.
 */
export type TensorSource =
  | { kind: 'raw'; bytes: Uint8Array }
  | { kind: 'typed'; field: string; values: ArrayLike<number | bigint> | readonly Uint8Array[] }
  | { kind: 'external'; location: ExternalLocation }
  | { kind: 'lazy'; produce: () => Uint8Array }
  | { kind: 'spilled'; file: SpillFile; offset: number; length: number };

/** Fields of a TensorProto the IR does not interpret, carried through a round trip. */
export interface TensorExtras {
  [field: string]: unknown;
}

/**
 * A constant tensor: an initializer, a Constant node's value or an attribute's tensor.
 * The element data stays where it was found (a view into the model file, a typed field of
 * the protobuf, an external data file or a generator) until {@link Tensor.bytes} is called.
 */
export class Tensor {
  name: string;
  readonly dataType: DataTypeId;
  readonly dims: readonly number[];
  docString: string | undefined;
  /** Unknown or uninterpreted TensorProto fields (metadata_props, segment, unknown fields). */
  extras: TensorExtras;
  private source: TensorSource;

  constructor(
    name: string,
    dataType: DataTypeId,
    dims: readonly number[],
    source: TensorSource,
    extras: TensorExtras = {},
  ) {
    this.name = name;
    this.dataType = dataType;
    this.dims = Object.freeze([...dims]);
    this.source = source;
    this.extras = extras;
    this.docString = undefined;
  }

  /** A float32 tensor that owns a copy-free view of `data`. */
  static fromFloat32(name: string, dims: readonly number[], data: Float32Array): Tensor {
    checkCount(name, dims, data.length);
    return new Tensor(name, DataType.FLOAT, dims, { kind: 'raw', bytes: typedBytes(data) });
  }

  /** A tensor of any numeric type from its little-endian raw bytes (int4: packed). */
  static fromBytes(name: string, dataType: DataTypeId, dims: readonly number[], bytes: Uint8Array): Tensor {
    const expected = rawByteLength(dataType, elementCount(dims));
    if (bytes.byteLength !== expected) {
      throw new Error(`tensor ${name}: ${bytes.byteLength} bytes given, ${dtypeName(dataType)}[${dims.join('x')}] needs ${expected}`);
    }
    return new Tensor(name, dataType, dims, { kind: 'raw', bytes });
  }

  /** A tensor whose bytes are produced on demand (used for generated models too large for memory). */
  static lazy(name: string, dataType: DataTypeId, dims: readonly number[], produce: () => Uint8Array): Tensor {
    return new Tensor(name, dataType, dims, { kind: 'lazy', produce });
  }

  /** Number of elements. */
  get size(): number {
    return elementCount(this.dims);
  }

  /** Bytes the data occupies in raw form (0 for string tensors). */
  get byteLength(): number {
    return rawByteLength(this.dataType, this.size);
  }

  /** The external location when the data lives in a data file beside the model. */
  get external(): ExternalLocation | undefined {
    return this.source.kind === 'external' ? this.source.location : undefined;
  }

  /** Where the bytes are when they wait in a spill file (see {@link Tensor.spillTo}). */
  get spilled(): { file: SpillFile; offset: number; length: number } | undefined {
    return this.source.kind === 'spilled' ? this.source : undefined;
  }

  /** The typed-field values (float_data, int64_data, string_data, …) when the data was stored that way. */
  get typedValues(): TensorSource & { kind: 'typed' } | undefined {
    return this.source.kind === 'typed' ? this.source : undefined;
  }

  /** True when reading the bytes is free (already in memory as raw bytes). */
  get isInMemory(): boolean {
    return this.source.kind === 'raw';
  }

  /**
   * The little-endian raw bytes. External data is read from disk on every call and not kept:
   * callers that need the bytes twice should hold on to the result.
   */
  bytes(): Uint8Array {
    const src = this.source;
    switch (src.kind) {
      case 'raw':
        return src.bytes;
      case 'external':
        return readExternal(this.name, src.location);
      case 'lazy': {
        const b = src.produce();
        if (b.byteLength !== this.byteLength) {
          throw new Error(`tensor ${this.name}: generator gave ${b.byteLength} bytes, expected ${this.byteLength}`);
        }
        return b;
      }
      case 'typed':
        return typedToRaw(this.name, this.dataType, src.values, this.size);
      case 'spilled':
        return src.file.read(src.offset, src.length);
    }
  }

  /**
   * {@link bytes}, read into `scratch` (grown as needed) when they live in a file (a data file
   * beside the model, or the spill file): valid until the next read into `scratch`. Reading many
   * large tensors one after another this way allocates no buffer per tensor, whose first-touch
   * page faults cost more than the read itself on a virtual machine (measured: inspect of an
   * 8-block Wan-shaped model 6.0 s → 1.4 s).
   */
  bytesVia(scratch: ReadBuffer): Uint8Array {
    const src = this.source;
    if (src.kind !== 'external' && src.kind !== 'spilled') return this.bytes();
    const into = grownTo(scratch, src.kind === 'external' ? src.location.length : src.length);
    return src.kind === 'external' ? readExternal(this.name, src.location, into) : src.file.read(src.offset, src.length, into);
  }

  /** Values of a float32 or float64 tensor as float32 (float16/bfloat16 go through the kernels). */
  toFloat32(): Float32Array {
    const b = this.bytes();
    if (this.dataType === DataType.FLOAT) return alignedView(b, Float32Array, this.size);
    if (this.dataType === DataType.DOUBLE) return Float32Array.from(alignedView(b, Float64Array, this.size));
    throw new Error(`tensor ${this.name}: toFloat32 on ${dtypeName(this.dataType)}; convert it with the float16 kernels`);
  }

  /** Values of an integer tensor as JS numbers (int64 beyond 2^53 loses precision; shapes never are). */
  toNumbers(): number[] {
    const b = this.bytes();
    const n = this.size;
    switch (this.dataType) {
      case DataType.INT64:
        return Array.from(alignedView(b, BigInt64Array, n), Number);
      case DataType.UINT64:
        return Array.from(alignedView(b, BigUint64Array, n), Number);
      case DataType.INT32:
        return Array.from(alignedView(b, Int32Array, n));
      case DataType.UINT32:
        return Array.from(alignedView(b, Uint32Array, n));
      case DataType.INT16:
        return Array.from(alignedView(b, Int16Array, n));
      case DataType.UINT16:
        return Array.from(alignedView(b, Uint16Array, n));
      case DataType.INT8:
        return Array.from(alignedView(b, Int8Array, n));
      case DataType.UINT8:
      case DataType.BOOL:
        return Array.from(b.subarray(0, n));
      case DataType.FLOAT:
      case DataType.DOUBLE:
        return Array.from(this.toFloat32());
      default:
        throw new Error(`tensor ${this.name}: toNumbers on ${dtypeName(this.dataType)}`);
    }
  }

  /** Replaces the data (the tensor keeps its name, type and shape). */
  setBytes(bytes: Uint8Array): void {
    if (bytes.byteLength !== this.byteLength) {
      throw new Error(`tensor ${this.name}: setBytes with ${bytes.byteLength} bytes, expected ${this.byteLength}`);
    }
    this.source = { kind: 'raw', bytes };
  }

  /**
   * Moves in-memory bytes to `file` and lets them go: {@link Tensor.bytes} reads them back
   * from there (a fresh copy each time). Other sources are left as they are (they are not
   * held in memory). Returns true when the bytes moved.
   */
  spillTo(file: SpillFile): boolean {
    if (this.source.kind !== 'raw') return false;
    this.source = { kind: 'spilled', file, ...file.write(this.source.bytes) };
    return true;
  }

  /** `f32[64x96]`: the form the printer and error messages use. */
  describe(): string {
    return `${dtypeName(this.dataType)}[${this.dims.join('x')}]`;
  }
}

function checkCount(name: string, dims: readonly number[], count: number): void {
  if (elementCount(dims) !== count) throw new Error(`tensor ${name}: ${count} values for shape [${dims.join('x')}]`);
}

function typedBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

type TypedCtor<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; new (length: number): T; BYTES_PER_ELEMENT: number };

/** A typed view of `b`, copying only when the bytes are not aligned for the element size. */
export function alignedView<T extends ArrayBufferView>(b: Uint8Array, ctor: TypedCtor<T>, n: number): T {
  if (b.byteOffset % ctor.BYTES_PER_ELEMENT === 0) return new ctor(b.buffer, b.byteOffset, n);
  const copy = new Uint8Array(n * ctor.BYTES_PER_ELEMENT);
  copy.set(b.subarray(0, copy.byteLength));
  return new ctor(copy.buffer, 0, n);
}

/** A buffer reused across reads (see {@link Tensor.bytesVia}), grown to the largest one. */
export interface ReadBuffer {
  bytes: Uint8Array;
}

/** `scratch`'s buffer, first replaced by a larger one when it holds fewer than `n` bytes. */
export function grownTo(scratch: ReadBuffer, n: number): Uint8Array {
  if (scratch.bytes.byteLength < n) scratch.bytes = new Uint8Array(n);
  return scratch.bytes;
}

/**
 * The bytes of an external tensor, read from its data file (into `out` when given: at least
 * `loc.length` bytes, so that a reader of many tensors can reuse one buffer).
 * @throws ModelFileError naming the tensor when the file is missing, swapped or too short
 */
export function readExternal(name: string, loc: ExternalLocation, into?: Uint8Array): Uint8Array {
  const out = into ? into.subarray(0, loc.length) : new Uint8Array(loc.length);
  const fail = (why: string): never => {
    throw new ModelFileError(loc.path, `tensor ${name}: external data location ${loc.location} ${why}`);
  };
  let fd: number;
  try {
    // The loader checked that this real path is a regular file inside the model's folder; the
    // flags keep it so if it was swapped since: no symlink followed, and a FIFO does not block.
    fd = openSync(loc.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    return fail(`cannot be opened (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    if (!fstatSync(fd).isFile()) fail('is no longer a regular file');
    let done = 0;
    while (done < loc.length) {
      const n = readSync(fd, out, done, loc.length - done, loc.offset + done);
      if (n === 0) fail(`is shorter than offset ${loc.offset} + length ${loc.length}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** Converts TensorProto typed fields (float_data, int32_data, …) to raw little-endian bytes. */
function typedToRaw(name: string, dt: DataTypeId, values: ArrayLike<number | bigint> | readonly Uint8Array[], n: number): Uint8Array {
  const num = (i: number): number => Number(values[i] as number | bigint);
  const big = (i: number): bigint => BigInt(values[i] as number | bigint);
  switch (dt) {
    case DataType.FLOAT:
      return typedBytes(Float32Array.from({ length: n }, (_, i) => num(i)));
    case DataType.DOUBLE:
      return typedBytes(Float64Array.from({ length: n }, (_, i) => num(i)));
    case DataType.INT64:
      return typedBytes(BigInt64Array.from({ length: n }, (_, i) => big(i)));
    case DataType.UINT64:
    case DataType.UINT32:
      return dt === DataType.UINT64
        ? typedBytes(BigUint64Array.from({ length: n }, (_, i) => big(i)))
        : typedBytes(Uint32Array.from({ length: n }, (_, i) => num(i)));
    case DataType.INT32:
      return typedBytes(Int32Array.from({ length: n }, (_, i) => num(i)));
    // int32_data carries these types one element per int32 (float16/bfloat16 as their bit pattern).
    case DataType.INT16:
      return typedBytes(Int16Array.from({ length: n }, (_, i) => num(i)));
    case DataType.UINT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return typedBytes(Uint16Array.from({ length: n }, (_, i) => num(i)));
    case DataType.INT8:
      return typedBytes(Int8Array.from({ length: n }, (_, i) => num(i)));
    case DataType.UINT8:
    case DataType.BOOL:
      return Uint8Array.from({ length: n }, (_, i) => num(i));
    default:
      throw new Error(`tensor ${name}: raw bytes of ${dtypeName(dt)} stored in typed fields are not supported`);
  }
}
