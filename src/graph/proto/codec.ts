/**
 * Lossless, deterministic, schema-driven ONNX protobuf codec.
 *
 * Wire-level reading and writing goes through `protobufjs/minimal`'s `Reader` and `Writer`
 * (tags, lengths, varint32, floats, strings, skipping); 64-bit varints are read by a small local
 * routine so that they can become `number` or `bigint` without going through `Long` objects.
 *
 * Representation of decoded messages (plain objects keyed by the proto's snake_case field names):
 *
 * - **Presence.** A property is set exactly when its field appeared on the wire, even with a
 *   default value (`data_type: 0`, `i: 0`, `name: ''`, an empty sub-message `{}`). The encoder
 *   writes every property that is not `undefined`/`null`, zeros and empty strings included, so
 *   proto2 presence survives a round trip. Repeated fields that appeared decode to arrays (possibly
 *   empty, for an empty packed record); empty arrays are not written.
 * - **Merging.** As in protobuf, a singular scalar that appears twice keeps the last value; a
 *   singular message that appears twice is merged; setting one member of a `oneof` clears the others.
 * - **int64 / uint64** (singular and repeated): a `number` when the value is a safe integer
 *   (|v| <= 2^53 - 1), otherwise a `bigint` (signed for int64, unsigned for uint64). Repeated
 *   64-bit fields (`dims`, `ints`, `int64_data`, `uint64_data`, ...) decode to plain arrays of such
 *   values (plain `number[]` in practice, no per-element objects). The encoder accepts `number`
 *   (any integer) or `bigint` anywhere a 64-bit value is expected, and any array-like (including
 *   `BigInt64Array`) for repeated 64-bit fields.
 * - **int32 / enum**: `number`. Repeated int32 (`int32_data`) decodes to an `Int32Array`.
 * - **float / double**: `number`; repeated ones (`float_data`, `floats`, `double_data`) decode to a
 *   `Float32Array` / `Float64Array` (copies, bit-exact). The encoder also accepts `number[]`.
 * - **bytes** (`raw_data`, `s`, `strings`, `string_data`): `Uint8Array` **views into the decoded
 *   buffer** (same `.buffer`, no copy). Mutating the input buffer mutates them.
 * - **string**: JS `string`. A string field whose payload is not valid UTF-8 cannot be represented
 *   losslessly as a JS string; such an occurrence is kept verbatim in `$unknown` instead (for a
 *   repeated string field this drops the element from the array; valid ONNX never does this).
 * - **Unknown fields** (field numbers not in the schema, or a wire type that does not match the
 *   schema) are kept as raw `Uint8Array` views (tag + payload) in `$unknown`, in wire order, and
 *   are re-emitted verbatim after the known fields.
 *
 * - **Lazy bytes.** The encoder also takes a {@link LazyBytes} for a bytes field: its length is
 *   known up front and its bytes are read when the encoder reaches it, so that
 *   {@link encodeMessageTo} holds one tensor's bytes at a time.
 *
 * Encoding is deterministic: known fields in ascending field-number order, then `$unknown`.
 * Repeated numeric fields are written packed when onnx.proto declares `[packed = true]` (the
 * TensorProto `*_data` arrays) and unpacked otherwise, exactly as onnx / protobuf-C++ do; both forms
 * are accepted on read. Hence encode(decode(encode(x))) is byte-identical to encode(x), and files
 * written by onnx / PyTorch usually re-encode byte-identically to the original file.
 */
import protobuf from 'protobufjs/minimal.js';
import {
  SCHEMA,
  type FieldDef,
  type Int64,
  type MessageTypeName,
  type MessageTypes,
  type ModelProto,
  type ProtoMessage,
} from './schema.ts';

export type { ProtoMessage, MessageTypeName, MessageTypes, Int64 } from './schema.ts';

const { Reader, Writer, BufferWriter, util } = protobuf;
type ReaderT = InstanceType<typeof Reader>;
type WriterT = InstanceType<typeof Writer>;

/**
 * The bytes of a `bytes` field, read only when the encoder writes them (a tensor's raw data read
 * from a data file): the size pass needs only `length`.
 */
export class LazyBytes {
  constructor(
    /** How many bytes `read` gives. */
    readonly length: number,
    private readonly produce: () => Uint8Array,
  ) {}

  /** The bytes; an error if there are not `length` of them (the size pass counted that many). */
  read(): Uint8Array {
    const b = this.produce();
    if (b.length !== this.length) throw new Error(`internal encoder error: lazy bytes gave ${b.length} bytes, expected ${this.length}`);
    return b;
  }
}

/** Largest message protobuf implementations accept (INT32_MAX bytes, "2 GiB"). */
export const PROTOBUF_SIZE_LIMIT = 0x7fffffff;

/** Maximum message nesting accepted by the decoder (guards the JS stack against hostile input). */
const MAX_DEPTH = 1000;

// ---------------------------------------------------------------------------------------------
// Compiled schema

const K_INT32 = 0;
const K_INT64 = 1;
const K_UINT64 = 2;
const K_FLOAT = 3;
const K_DOUBLE = 4;
const K_STRING = 5;
const K_BYTES = 6;
const K_MESSAGE = 7;

/** Kind of typed array used for a repeated field (0 = plain JS array). */
const T_NONE = 0;
const T_F32 = 1;
const T_F64 = 2;
const T_I32 = 3;

interface CField {
  readonly def: FieldDef;
  readonly name: string;
  readonly no: number;
  readonly kind: number;
  readonly repeated: boolean;
  readonly packed: boolean;
  /** Whether a packed (length-delimited) record is accepted on read. */
  readonly packable: boolean;
  /** Wire type of a single (unpacked) value. */
  readonly wt: number;
  /** Tag of a single value / of the packed record, and their varint sizes. */
  readonly tag: number;
  readonly tagSize: number;
  readonly ptag: number;
  readonly ptagSize: number;
  readonly typed: number;
  /** Other members of the same oneof. */
  siblings: readonly string[];
  sub: CMessage | undefined;
}

interface CMessage {
  readonly name: MessageTypeName;
  readonly fields: readonly CField[];
  readonly byNo: readonly (CField | undefined)[];
  readonly typedFields: readonly CField[];
  readonly oneofs: readonly (readonly CField[])[];
}

function kindCode(kind: FieldDef['kind']): number {
  switch (kind) {
    case 'int32':
    case 'enum':
      return K_INT32;
    case 'int64':
      return K_INT64;
    case 'uint64':
      return K_UINT64;
    case 'float':
      return K_FLOAT;
    case 'double':
      return K_DOUBLE;
    case 'string':
      return K_STRING;
    case 'bytes':
      return K_BYTES;
    case 'message':
      return K_MESSAGE;
  }
}

function wireTypeOf(kind: number): number {
  switch (kind) {
    case K_FLOAT:
      return 5;
    case K_DOUBLE:
      return 1;
    case K_STRING:
    case K_BYTES:
    case K_MESSAGE:
      return 2;
    default:
      return 0;
  }
}

const COMPILED = new Map<string, CMessage>();

function compile(): void {
  const names = Object.keys(SCHEMA) as MessageTypeName[];
  for (const name of names) {
    const def = SCHEMA[name];
    const defs = [...def.fields].sort((a, b) => a.no - b.no);
    const fields: CField[] = [];
    const byNo: (CField | undefined)[] = [];
    const groups = new Map<string, CField[]>();
    for (const d of defs) {
      if (byNo[d.no] !== undefined) throw new Error(`schema: duplicate field number ${d.no} in ${name}`);
      const kind = kindCode(d.kind);
      const wt = wireTypeOf(kind);
      const repeated = d.repeated === true;
      const packable = repeated && wt !== 2;
      const typed = !repeated ? T_NONE : kind === K_FLOAT ? T_F32 : kind === K_DOUBLE ? T_F64 : kind === K_INT32 ? T_I32 : T_NONE;
      const tag = ((d.no << 3) | wt) >>> 0;
      const ptag = ((d.no << 3) | 2) >>> 0;
      const f: CField = {
        def: d,
        name: d.name,
        no: d.no,
        kind,
        repeated,
        packed: packable && d.packed === true,
        packable,
        wt,
        tag,
        tagSize: varint32Size(tag),
        ptag,
        ptagSize: varint32Size(ptag),
        typed,
        siblings: [],
        sub: undefined,
      };
      if (d.oneof !== undefined) {
        let g = groups.get(d.oneof);
        if (!g) groups.set(d.oneof, (g = []));
        g.push(f);
      }
      fields.push(f);
      byNo[d.no] = f;
    }
    for (const g of groups.values()) {
      for (const f of g) f.siblings = g.filter((o) => o !== f).map((o) => o.name);
    }
    COMPILED.set(name, {
      name,
      fields,
      byNo,
      typedFields: fields.filter((f) => f.typed !== T_NONE),
      oneofs: [...groups.values()],
    });
  }
  for (const m of COMPILED.values()) {
    for (const f of m.fields) {
      if (f.kind !== K_MESSAGE) continue;
      const sub = f.def.type !== undefined ? COMPILED.get(f.def.type) : undefined;
      if (!sub) throw new Error(`schema: unknown message type ${String(f.def.type)} for ${m.name}.${f.name}`);
      f.sub = sub;
    }
  }
}
compile();

function messageDef(typeName: string): CMessage {
  const m = COMPILED.get(typeName);
  if (!m) throw new Error(`unknown ONNX message type: ${typeName}`);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Decoding

type Obj = Record<string, unknown> & ProtoMessage;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Collects the pieces of a repeated typed-array field while its message is being decoded. */
class Parts {
  readonly parts: (Float32Array | Float64Array | Int32Array | number)[] = [];
  length = 0;
  add(p: Float32Array | Float64Array | Int32Array | number[] | number): void {
    if (typeof p === 'number') {
      this.parts.push(p);
      this.length += 1;
    } else if (Array.isArray(p)) {
      for (const x of p) this.parts.push(x);
      this.length += p.length;
    } else {
      this.parts.push(p);
      this.length += p.length;
    }
  }
  finish(typed: number): Float32Array | Float64Array | Int32Array {
    const ps = this.parts;
    if (ps.length === 1 && typeof ps[0] !== 'number') return ps[0];
    const out = typed === T_F32 ? new Float32Array(this.length) : typed === T_F64 ? new Float64Array(this.length) : new Int32Array(this.length);
    let o = 0;
    for (const p of ps) {
      if (typeof p === 'number') out[o++] = p;
      else {
        out.set(p, o);
        o += p.length;
      }
    }
    return out;
  }
}

function malformed(r: ReaderT, what: string): Error {
  return new RangeError(`malformed protobuf: ${what} at offset ${r.pos}`);
}

const TWO32 = 4294967296;

/** Combines two's-complement 64-bit halves into a number (when safe) or a bigint. */
function combine64(lo: number, hi: number, unsigned: boolean): Int64 {
  if (!unsigned && hi & 0x80000000) {
    const nlo = (~lo + 1) >>> 0;
    const nhi = (~hi + (nlo === 0 ? 1 : 0)) >>> 0;
    const n = nhi * TWO32 + nlo;
    return n <= Number.MAX_SAFE_INTEGER ? -n : -((BigInt(nhi) << 32n) | BigInt(nlo));
  }
  const n = hi * TWO32 + lo;
  return n <= Number.MAX_SAFE_INTEGER ? n : (BigInt(hi) << 32n) | BigInt(lo);
}

/** Reads a 64-bit varint as number (safe) or bigint; bounds-checked against `r.len`. */
function readVarint64(r: ReaderT, unsigned: boolean): Int64 {
  const buf = r.buf;
  const len = r.len;
  let pos = r.pos;
  // Fast path: up to 7 bytes (< 2^49), always a non-negative safe integer.
  let v = 0;
  let mul = 1;
  for (let i = 0; i < 7; i++) {
    if (pos >= len) throw malformed(r, 'truncated varint');
    const b = buf[pos++];
    v += (b & 127) * mul;
    if (b < 128) {
      r.pos = pos;
      return v;
    }
    mul *= 128;
  }
  // Slow path: collect the low/high 32-bit halves.
  pos = r.pos;
  let lo = 0;
  let hi = 0;
  let b = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= len) throw malformed(r, 'truncated varint');
    b = buf[pos++];
    if (i < 4) lo |= (b & 127) << (7 * i);
    else if (i === 4) {
      lo |= (b & 127) << 28;
      hi |= (b & 127) >> 4;
    } else hi |= (b & 127) << (7 * (i - 5) + 3);
    if (b < 128) {
      r.pos = pos;
      return combine64(lo >>> 0, hi >>> 0, unsigned);
    }
  }
  throw malformed(r, 'varint longer than 10 bytes');
}

function readPackedRange(r: ReaderT): [number, number] {
  const n = r.size();
  const start = r.pos;
  const end = start + n;
  if (end > r.len) throw malformed(r, 'length exceeds enclosing message');
  return [start, end];
}

function copyFloats(src: Uint8Array, start: number, end: number, f64: boolean): Float32Array | Float64Array {
  const width = f64 ? 8 : 4;
  const count = (end - start) / width;
  const out = f64 ? new Float64Array(count) : new Float32Array(count);
  if (LITTLE_ENDIAN) {
    new Uint8Array(out.buffer).set(src.subarray(start, end));
  } else {
    const dv = new DataView(src.buffer, src.byteOffset + start, end - start);
    for (let i = 0; i < count; i++) out[i] = f64 ? dv.getFloat64(i * 8, true) : dv.getFloat32(i * 4, true);
  }
  return out;
}

function addTyped(obj: Obj, f: CField, piece: Float32Array | Float64Array | Int32Array | number): void {
  let acc = obj[f.name];
  if (!(acc instanceof Parts)) {
    const parts = new Parts();
    if (acc !== undefined) parts.add(acc as Float32Array | Float64Array | Int32Array | number[]);
    obj[f.name] = parts;
    acc = parts;
  }
  (acc as Parts).add(piece);
}

function pushUnknown(obj: Obj, raw: Uint8Array): void {
  (obj.$unknown ??= []).push(raw);
}

/** Sentinel: the string payload was not valid UTF-8. */
const INVALID: unique symbol = Symbol('invalid-utf8');

/** Reads one value of field `f` (wire type already matched); INVALID for a non-UTF-8 string. */
function readValue(r: ReaderT, src: Uint8Array, f: CField, depth: number, existing: unknown): unknown {
  switch (f.kind) {
    case K_INT32:
      return r.int32();
    case K_INT64:
      return readVarint64(r, false);
    case K_UINT64:
      return readVarint64(r, true);
    case K_FLOAT:
      return r.float();
    case K_DOUBLE:
      return r.double();
    case K_STRING: {
      const n = r.size();
      const start = r.pos;
      if (start + n > r.len) throw malformed(r, 'string exceeds enclosing message');
      const s = n === 0 ? '' : readString(r, start, n);
      return s === undefined ? INVALID : s;
    }
    case K_BYTES: {
      const n = r.size();
      const start = r.pos;
      const end = start + n;
      if (end > r.len) throw malformed(r, 'bytes exceed enclosing message');
      r.pos = end;
      return src.subarray(start, end);
    }
    default: {
      // K_MESSAGE
      if (depth >= MAX_DEPTH) throw malformed(r, `message nesting deeper than ${MAX_DEPTH}`);
      const n = r.size();
      const end = r.pos + n;
      const outer = r.len;
      if (end > outer) throw malformed(r, 'sub-message exceeds enclosing message');
      const child = (existing !== undefined && existing !== null ? existing : {}) as Obj;
      r.len = end;
      decodeInto(f.sub!, r, src, child, depth + 1);
      r.len = outer;
      return child;
    }
  }
}

/** Decodes the UTF-8 payload [start, start + n); undefined if it is not valid UTF-8. */
function readString(r: ReaderT, start: number, n: number): string | undefined {
  const end = start + n;
  const s = util.utf8.read(r.buf, start, end);
  r.pos = end;
  if (s.indexOf('\uFFFD') !== -1) {
    try {
      strictUtf8.decode(r.buf.subarray(start, end));
    } catch {
      return undefined;
    }
  }
  return s;
}

function decodeInto(m: CMessage, r: ReaderT, src: Uint8Array, obj: Obj, depth: number): void {
  const byNo = m.byNo;
  const end = r.len;
  while (r.pos < end) {
    const start = r.pos;
    const tag = r.tag();
    const no = tag >>> 3;
    const wt = tag & 7;
    const f = byNo[no];
    if (f !== undefined) {
      if (wt === f.wt) {
        if (!f.repeated) {
          const v = readValue(r, src, f, depth, f.kind === K_MESSAGE ? obj[f.name] : undefined);
          if (v === INVALID) {
            pushUnknown(obj, src.subarray(start, r.pos));
            continue;
          }
          obj[f.name] = v;
          for (const s of f.siblings) if (obj[s] !== undefined) delete obj[s];
        } else if (f.typed !== T_NONE) {
          addTyped(obj, f, readValue(r, src, f, depth, undefined) as number);
        } else {
          const v = readValue(r, src, f, depth, undefined);
          if (v === INVALID) {
            pushUnknown(obj, src.subarray(start, r.pos));
            continue;
          }
          const arr = obj[f.name] as unknown[] | undefined;
          if (arr === undefined) obj[f.name] = [v];
          else arr.push(v);
        }
        continue;
      }
      if (wt === 2 && f.packable) {
        readPacked(r, src, f, obj);
        continue;
      }
    }
    if (no === 0) throw malformed(r, 'field number 0');
    if (wt === 4) throw malformed(r, 'unexpected end-group tag');
    r.skipType(wt, 0, no);
    pushUnknown(obj, src.subarray(start, r.pos));
  }
  for (const f of m.typedFields) {
    const v = obj[f.name];
    if (v instanceof Parts) obj[f.name] = v.finish(f.typed);
  }
}

function readPacked(r: ReaderT, src: Uint8Array, f: CField, obj: Obj): void {
  const [start, end] = readPackedRange(r);
  switch (f.kind) {
    case K_FLOAT:
    case K_DOUBLE: {
      const width = f.kind === K_DOUBLE ? 8 : 4;
      if ((end - start) % width !== 0) throw malformed(r, `packed ${f.name} length not a multiple of ${width}`);
      addTyped(obj, f, copyFloats(src, start, end, width === 8));
      r.pos = end;
      return;
    }
    case K_INT32: {
      const buf = r.buf;
      let count = 0;
      for (let i = start; i < end; i++) if (buf[i] < 128) count++;
      const out = new Int32Array(count);
      const outer = r.len;
      r.len = end;
      for (let i = 0; i < count; i++) out[i] = r.int32();
      r.len = outer;
      if (r.pos !== end) throw malformed(r, `packed ${f.name} is not a sequence of varints`);
      addTyped(obj, f, out);
      return;
    }
    default: {
      // K_INT64 / K_UINT64
      const unsigned = f.kind === K_UINT64;
      let arr = obj[f.name] as Int64[] | undefined;
      if (arr === undefined) obj[f.name] = arr = [];
      const outer = r.len;
      r.len = end;
      while (r.pos < end) arr.push(readVarint64(r, unsigned));
      r.len = outer;
      return;
    }
  }
}

/**
 * Decodes `bytes` as the message `typeName` (e.g. `'ModelProto'`, `'TensorShapeProto.Dimension'`).
 * bytes fields of the result are views into `bytes` (see module docs for all representation rules).
 */
export function decodeMessage<K extends MessageTypeName>(typeName: K, bytes: Uint8Array): MessageTypes[K] {
  const m = messageDef(typeName);
  // A plain Uint8Array view of the same memory, so bytes fields are plain Uint8Array views even for a Buffer input.
  const src = bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const r = new Reader(src);
  const obj: Obj = {};
  decodeInto(m, r, src, obj, 0);
  return obj as MessageTypes[K];
}

/** Decodes an ONNX model file (a serialized ModelProto). */
export function decodeModel(bytes: Uint8Array): ModelProto {
  return decodeMessage('ModelProto', bytes);
}

// ---------------------------------------------------------------------------------------------
// Sizing

function varint32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

function fieldError(m: CMessage, f: CField, what: string): TypeError {
  return new TypeError(`${m.name}.${f.name}: ${what}`);
}

function int32Size(m: CMessage, f: CField, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
    throw fieldError(m, f, `expected an int32, got ${describe(v)}`);
  }
  return v < 0 ? 10 : varint32Size(v);
}

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

function int64Size(m: CMessage, f: CField, v: unknown): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < -(2 ** 63) || v >= 2 ** 64) throw fieldError(m, f, `expected a 64-bit integer, got ${describe(v)}`);
    if (v < 0) return 10;
    if (v < 0x10000000) return varint32Size(v);
    let n = 4;
    let x = Math.floor(v / 0x10000000);
    while (x > 0) {
      n++;
      x = Math.floor(x / 128);
    }
    return n;
  }
  if (typeof v === 'bigint') {
    if (v < INT64_MIN || v > UINT64_MAX) throw fieldError(m, f, `bigint out of 64-bit range: ${v}`);
    if (v < 0n) return 10;
    let n = 1;
    let x = v;
    while (x >= 128n) {
      n++;
      x >>= 7n;
    }
    return n;
  }
  throw fieldError(m, f, `expected a number or bigint, got ${describe(v)}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return (v as object).constructor?.name ?? 'an object';
  return typeof v === 'string' ? `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}` : `${typeof v} ${String(v)}`;
}

function isArrayLike(v: unknown): v is ArrayLike<unknown> {
  return Array.isArray(v) || (ArrayBuffer.isView(v) && !(v instanceof DataView));
}

/** Size of one value of a scalar (non-message) field, without tag. */
function scalarSize(m: CMessage, f: CField, v: unknown): number {
  switch (f.kind) {
    case K_INT32:
      return int32Size(m, f, v);
    case K_INT64:
    case K_UINT64:
      return int64Size(m, f, v);
    case K_FLOAT:
      if (typeof v !== 'number') throw fieldError(m, f, `expected a number, got ${describe(v)}`);
      return 4;
    case K_DOUBLE:
      if (typeof v !== 'number') throw fieldError(m, f, `expected a number, got ${describe(v)}`);
      return 8;
    case K_STRING: {
      if (typeof v !== 'string') throw fieldError(m, f, `expected a string, got ${describe(v)}`);
      const n = util.utf8.length(v);
      return varint32Size(n) + n;
    }
    default: {
      // K_BYTES
      if (v instanceof LazyBytes) return varint32Size(v.length) + v.length;
      if (!(v instanceof Uint8Array)) throw fieldError(m, f, `expected a Uint8Array, got ${describe(v)}`);
      return varint32Size(v.length) + v.length;
    }
  }
}

/**
 * Computes the encoded size of `msg`. Sizes of sub-messages and packed varint payloads are pushed
 * to `sizes` in pre-order, which is exactly the order in which the writer needs them.
 */
function sizeMessage(m: CMessage, msg: Obj, sizes: number[]): number {
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    throw new TypeError(`${m.name}: expected a message object, got ${describe(msg)}`);
  }
  for (const g of m.oneofs) {
    let set = 0;
    for (const f of g) if (msg[f.name] !== undefined && msg[f.name] !== null) set++;
    if (set > 1) throw new TypeError(`${m.name}: more than one member of a oneof is set (${g.map((f) => f.name).join(', ')})`);
  }
  let total = 0;
  for (const f of m.fields) {
    const v = msg[f.name];
    if (v === undefined || v === null) continue;
    if (!f.repeated) {
      total += f.tagSize;
      if (f.kind === K_MESSAGE) {
        const idx = sizes.length;
        sizes.push(0);
        const s = sizeMessage(f.sub!, v as Obj, sizes);
        sizes[idx] = s;
        total += varint32Size(s) + s;
      } else {
        total += scalarSize(m, f, v);
      }
      continue;
    }
    if (!isArrayLike(v)) throw fieldError(m, f, `expected an array, got ${describe(v)}`);
    const n = v.length;
    if (n === 0) continue;
    if (f.kind === K_MESSAGE) {
      for (let i = 0; i < n; i++) {
        const idx = sizes.length;
        sizes.push(0);
        const s = sizeMessage(f.sub!, v[i] as Obj, sizes);
        sizes[idx] = s;
        total += f.tagSize + varint32Size(s) + s;
      }
    } else if (f.kind === K_FLOAT || f.kind === K_DOUBLE) {
      const width = f.kind === K_FLOAT ? 4 : 8;
      if (!(v instanceof Float32Array || v instanceof Float64Array)) {
        for (let i = 0; i < n; i++) if (typeof v[i] !== 'number') throw fieldError(m, f, `element ${i}: expected a number, got ${describe(v[i])}`);
      }
      total += f.packed ? f.ptagSize + varint32Size(n * width) + n * width : n * (f.tagSize + width);
    } else if (f.packed) {
      let payload = 0;
      for (let i = 0; i < n; i++) payload += scalarSize(m, f, v[i]);
      sizes.push(payload);
      total += f.ptagSize + varint32Size(payload) + payload;
    } else {
      total += n * f.tagSize;
      for (let i = 0; i < n; i++) total += scalarSize(m, f, v[i]);
    }
  }
  const unknown = msg.$unknown;
  if (unknown !== undefined) {
    if (!Array.isArray(unknown)) throw new TypeError(`${m.name}.$unknown: expected an array of Uint8Array`);
    for (const u of unknown) {
      if (!(u instanceof Uint8Array)) throw new TypeError(`${m.name}.$unknown: expected an array of Uint8Array`);
      total += u.length;
    }
  }
  return total;
}

/**
 * The number of bytes `encodeMessage(typeName, msg)` would produce, computed without building the
 * buffer (cheap: no copying of tensor data). Use it to check the 2 GiB protobuf limit
 * ({@link PROTOBUF_SIZE_LIMIT}) before encoding. Throws the same TypeErrors as the encoder for
 * malformed messages.
 */
export function encodedSize<K extends MessageTypeName>(typeName: K, msg: MessageTypes[K]): number {
  return sizeMessage(messageDef(typeName), msg as Obj, []);
}

// ---------------------------------------------------------------------------------------------
// Writing

/** Extra room so that protobufjs' worst-case `_reserve` calls never reallocate the exact-size buffer. */
const SLACK = 512;

const NodeBuffer = (globalThis as { Buffer?: typeof Buffer }).Buffer;

class Emitter {
  i = 0;
  constructor(
    readonly w: WriterT,
    readonly sizes: number[],
    /** Writes a {@link LazyBytes} payload (its length is already written); without it, into `w`. */
    readonly lazy?: (v: LazyBytes) => void,
  ) {}

  writeInt64(v: Int64): void {
    const w = this.w;
    if (typeof v === 'number') {
      if (v >= 0 && v <= 0x7fffffff) w.uint32(v);
      else w.int64(v);
    } else {
      const u = BigInt.asUintN(64, v);
      const bits = { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0, unsigned: true };
      w.uint64(bits as unknown as number);
    }
  }

  writeScalar(f: CField, v: unknown): void {
    const w = this.w;
    switch (f.kind) {
      case K_INT32:
        w.int32(v as number);
        return;
      case K_INT64:
      case K_UINT64:
        this.writeInt64(v as Int64);
        return;
      case K_FLOAT:
        w.float(v as number);
        return;
      case K_DOUBLE:
        w.double(v as number);
        return;
      case K_STRING:
        w.string(v as string);
        return;
      default:
        if (v instanceof LazyBytes) {
          w.uint32(v.length);
          if (this.lazy) this.lazy(v);
          else w.raw(v.read());
        } else {
          w.bytes(v as Uint8Array);
        }
    }
  }

  writeMessage(m: CMessage, msg: Obj): void {
    const w = this.w;
    for (const f of m.fields) {
      const v = msg[f.name];
      if (v === undefined || v === null) continue;
      if (!f.repeated) {
        w.uint32(f.tag);
        if (f.kind === K_MESSAGE) {
          w.uint32(this.sizes[this.i++]);
          this.writeMessage(f.sub!, v as Obj);
        } else {
          this.writeScalar(f, v);
        }
        continue;
      }
      const arr = v as ArrayLike<unknown>;
      const n = arr.length;
      if (n === 0) continue;
      if (f.kind === K_MESSAGE) {
        for (let i = 0; i < n; i++) {
          w.uint32(f.tag);
          w.uint32(this.sizes[this.i++]);
          this.writeMessage(f.sub!, arr[i] as Obj);
        }
      } else if (f.kind === K_FLOAT || f.kind === K_DOUBLE) {
        const f32 = f.kind === K_FLOAT;
        if (f.packed) {
          w.uint32(f.ptag);
          w.uint32(n * (f32 ? 4 : 8));
          if (LITTLE_ENDIAN && (f32 ? arr instanceof Float32Array : arr instanceof Float64Array)) {
            const ta = arr as Float32Array | Float64Array;
            w.raw(new Uint8Array(ta.buffer, ta.byteOffset, ta.byteLength));
          } else if (f32) {
            for (let i = 0; i < n; i++) w.float(arr[i] as number);
          } else {
            for (let i = 0; i < n; i++) w.double(arr[i] as number);
          }
        } else {
          for (let i = 0; i < n; i++) {
            w.uint32(f.tag);
            if (f32) w.float(arr[i] as number);
            else w.double(arr[i] as number);
          }
        }
      } else if (f.packed) {
        w.uint32(f.ptag);
        w.uint32(this.sizes[this.i++]);
        for (let i = 0; i < n; i++) this.writeScalar(f, arr[i]);
      } else {
        for (let i = 0; i < n; i++) {
          w.uint32(f.tag);
          this.writeScalar(f, arr[i]);
        }
      }
    }
    const unknown = msg.$unknown;
    if (unknown !== undefined) for (const u of unknown) w.raw(u);
  }
}

/** A protobufjs writer over a new buffer of `bytes` (a Node Buffer where there is one). */
function writerOf(bytes: number): WriterT {
  let w: WriterT;
  if (NodeBuffer) {
    w = new BufferWriter();
    w.buf = NodeBuffer.alloc(bytes);
  } else {
    w = new Writer();
    w.buf = new Uint8Array(bytes);
  }
  w.pos = 0;
  w.view = null;
  return w;
}

/**
 * Encodes `msg` as the message `typeName`. Deterministic: known fields in ascending field-number
 * order, then `$unknown` verbatim. Throws a RangeError if the result would exceed
 * {@link PROTOBUF_SIZE_LIMIT} (check with {@link encodedSize} first), and a TypeError for values of
 * the wrong type. The result is a fresh Uint8Array.
 */
export function encodeMessage<K extends MessageTypeName>(typeName: K, msg: MessageTypes[K]): Uint8Array {
  const m = messageDef(typeName);
  const sizes: number[] = [];
  const total = sizeMessage(m, msg as Obj, sizes);
  if (total > PROTOBUF_SIZE_LIMIT) {
    throw new RangeError(`${typeName} would be ${total} bytes, over the protobuf limit of ${PROTOBUF_SIZE_LIMIT} bytes (2 GiB); store tensors as external data`);
  }
  const w = writerOf(total + SLACK);
  const e = new Emitter(w, sizes);
  e.writeMessage(m, msg as Obj);
  if (w.pos !== total || e.i !== sizes.length) {
    throw new Error(`internal encoder error: wrote ${w.pos} bytes, expected ${total}`);
  }
  return new Uint8Array(w.buf.buffer, w.buf.byteOffset, total);
}

/** Encodes an ONNX model (a ModelProto). */
export function encodeModel(model: ModelProto): Uint8Array {
  return encodeMessage('ModelProto', model);
}

/** Bytes the streamed encoder gathers before handing them on (its buffer grows only for a larger field). */
const STREAM_CHUNK = 4 * 2 ** 20;

/**
 * {@link encodeMessage}, handing the encoding to `write` piece by piece instead of building it:
 * the same bytes in the same order, each {@link LazyBytes} read when reached and given to
 * `write` on its own, so that memory holds one of them and a buffer of the rest at a time
 * (an inline model's tensors are lazy: see `to-proto.ts`). `write` must consume (copy or
 * write out) its argument before returning: the buffer is reused. `sized` sees the total
 * length before anything is read or written (a caller's own limit throws there). Returns the
 * total length.
 */
export function encodeMessageTo<K extends MessageTypeName>(typeName: K, msg: MessageTypes[K], write: (bytes: Uint8Array) => void, sized?: (total: number) => void): number {
  const m = messageDef(typeName);
  const sizes: number[] = [];
  const total = sizeMessage(m, msg as Obj, sizes);
  sized?.(total);
  if (total > PROTOBUF_SIZE_LIMIT) {
    throw new RangeError(`${typeName} would be ${total} bytes, over the protobuf limit of ${PROTOBUF_SIZE_LIMIT} bytes (2 GiB); store tensors as external data`);
  }
  const w = writerOf(Math.min(total, STREAM_CHUNK) + SLACK);
  let written = 0;
  const flush = () => {
    if (w.pos === 0) return;
    write(w.buf.subarray(0, w.pos));
    written += w.pos;
    w.pos = 0;
  };
  const e = new Emitter(w, sizes, (v) => {
    flush();
    const bytes = v.read();
    write(bytes);
    written += bytes.length;
  });
  e.writeMessage(m, msg as Obj);
  flush();
  if (written !== total || e.i !== sizes.length) {
    throw new Error(`internal encoder error: wrote ${written} bytes, expected ${total}`);
  }
  return total;
}

/** Converts an int64 value to a number, throwing if it is not exactly representable. */
export function int64ToNumber(v: Int64): number {
  if (typeof v === 'number') return v;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int64 value ${v} is not a safe JS integer`);
  return n;
}
