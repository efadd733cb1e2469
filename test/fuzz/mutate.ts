// Seeded mutants of a real ONNX file, for the fuzz test and `npm run bench -- fuzz`.
// Byte level: bit flips near protobuf field headers, truncations, insertions and corrupted
// length varints, at offsets found by walking the wire format (random offsets would mostly
// land in weight bytes, which no parser reads). Field level: a decoded model (through the
// project's own codec) with one field made wrong, then encoded again.
import { decodeModel, encodeModel } from '../../src/graph/proto/codec.ts';
import type { SeededRandom } from '../../src/kernels/random.ts';

/** A protobuf field header: where its tag starts, and (length-delimited fields) its length varint. */
interface Header {
  tag: number;
  lengthAt?: number;
  lengthBytes?: number;
}

/** One mutant: its bytes and how it was made (for a failure message that can be replayed). */
export interface Mutant {
  bytes: Uint8Array;
  how: string;
}

/** Field headers of `bytes`, recursing into length-delimited payloads that parse as messages. */
export function fieldHeaders(bytes: Uint8Array, start = 0, end = bytes.length, out: Header[] = [], depth = 0): Header[] {
  let p = start;
  const found: Header[] = [];
  const varint = (): number | undefined => {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (p >= end) return undefined;
      const b = bytes[p++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    return undefined;
  };
  while (p < end) {
    const tagAt = p;
    const key = varint();
    if (key === undefined || key >>> 3 === 0) return out;
    const wire = key & 7;
    if (wire === 0) {
      if (varint() === undefined) return out;
      found.push({ tag: tagAt });
    } else if (wire === 1 || wire === 5) {
      p += wire === 1 ? 8 : 4;
      found.push({ tag: tagAt });
    } else if (wire === 2) {
      const lengthAt = p;
      const len = varint();
      if (len === undefined || p + len > end) return out;
      found.push({ tag: tagAt, lengthAt, lengthBytes: p - lengthAt });
      // Small payloads may be messages (nodes, attributes, value infos); weights are not walked.
      if (depth < 6 && len > 1 && len < 1 << 16) {
        const inner = fieldHeaders(bytes, p, p + len, [], depth + 1);
        if (inner.length) found.push(...inner);
      }
      p += len;
    } else return out;
  }
  out.push(...found);
  return out;
}

const pick = <T>(r: SeededRandom, xs: readonly T[]): T => xs[r.int(xs.length)]!;

/** A byte-level mutant of `bytes` (never modified). */
export function byteMutant(bytes: Uint8Array, headers: readonly Header[], r: SeededRandom): Mutant {
  const h = pick(r, headers);
  const kind = pick(r, ['flip', 'flip', 'truncate', 'insert', 'length'] as const);
  if (kind === 'flip') {
    const at = Math.min(bytes.length - 1, h.tag + r.int(4));
    const bit = r.int(8);
    const out = bytes.slice();
    out[at]! ^= 1 << bit;
    return { bytes: out, how: `flip bit ${bit} at ${at}` };
  }
  if (kind === 'truncate') {
    const at = h.tag + r.int(3);
    return { bytes: bytes.slice(0, at), how: `truncate at ${at}` };
  }
  if (kind === 'insert') {
    const n = 1 + r.int(4);
    const junk = Uint8Array.from({ length: n }, () => r.int(256));
    const out = new Uint8Array(bytes.length + n);
    out.set(bytes.subarray(0, h.tag));
    out.set(junk, h.tag);
    out.set(bytes.subarray(h.tag), h.tag + n);
    return { bytes: out, how: `insert ${n} byte(s) [${[...junk].join(',')}] at ${h.tag}` };
  }
  // Length varint: a length-delimited header whose length becomes 0, off by one, or huge.
  const lh = h.lengthAt === undefined ? headers.find((x) => x.lengthAt !== undefined)! : h;
  const out = bytes.slice();
  const at = lh.lengthAt!;
  const choice = r.int(4);
  if (choice === 0) out[at] = 0;
  else if (choice === 1) out[at] = (out[at]! & 0x80) | ((out[at]! + 1) & 0x7f);
  else if (choice === 2) out[at] = (out[at]! & 0x80) | ((out[at]! - 1) & 0x7f);
  else for (let i = 0; i < lh.lengthBytes!; i++) out[at + i] = i === lh.lengthBytes! - 1 ? 0x7f : 0xff;
  return { bytes: out, how: `length varint at ${at}: ${['zero', '+1', '-1', 'huge'][choice]}` };
}

type Proto = Record<string, any>;

/** Field-level mutations: each makes one field of a decoded model wrong. */
const FIELD_MUTATIONS: readonly [string, (p: Proto, r: SeededRandom) => boolean][] = [
  ['empty op_type', (p, r) => set(pick(r, nodes(p)), 'op_type', '')],
  ['unknown op_type', (p, r) => set(pick(r, nodes(p)), 'op_type', 'NoSuchOp')],
  ['op from an unimported domain', (p, r) => set(pick(r, nodes(p)), 'domain', 'com.example')],
  ['input renamed to an undefined value', (p, r) => withInput(p, r, (n, i) => (n.input[i] = 'no_such_value'))],
  ['input dropped', (p, r) => withInput(p, r, (n, i) => n.input.splice(i, 1))],
  ['extra input', (p, r) => withInput(p, r, (n) => n.input.push(n.input[0]))],
  ['cycle: a node reads its own output', (p, r) => withInput(p, r, (n, i) => (n.input[i] = n.output?.[0] ?? 'x'))],
  ['nodes reversed', (p) => (p.graph.node?.reverse(), true)],
  ['node duplicated', (p, r) => (p.graph.node?.push({ ...pick(r, nodes(p)) }), true)],
  ['output renamed', (p) => (p.graph.output?.[0] ? ((p.graph.output[0].name = 'not_produced'), true) : false)],
  ['negative dim', (p, r) => withTensor(p, r, (t) => (t.dims = [-(1 + r.int(64)), ...(t.dims ?? []).slice(1)]))],
  ['huge dim', (p, r) => withTensor(p, r, (t) => (t.dims = [2 ** 40, ...(t.dims ?? []).slice(1)]))],
  ['dims dropped', (p, r) => withTensor(p, r, (t) => (t.dims = []))],
  ['data type changed', (p, r) => withTensor(p, r, (t) => (t.data_type = pick(r, [0, 2, 7, 8, 10, 16, 99])))],
  ['raw data cut short', (p, r) => withTensor(p, r, (t) => t.raw_data && (t.raw_data = t.raw_data.subarray(0, t.raw_data.length >> 1)))],
  ['external data outside the folder', (p, r) => withTensor(p, r, (t) => ((t.data_location = 1), (t.external_data = [{ key: 'location', value: pick(r, ['../x.bin', '/etc/passwd', '.', 'missing.bin']) }])))],
  ['opset version changed', (p, r) => (p.opset_import?.[0] ? ((p.opset_import[0].version = pick(r, [0, 1, 5, 999, -3])), true) : false)],
  ['opset import dropped', (p) => (p.opset_import ? ((p.opset_import = []), true) : false)],
  ['ir_version dropped', (p) => ((p.ir_version = 0), true)],
  ['attribute type changed', (p, r) => {
    const n = nodes(p).filter((x) => x.attribute?.length);
    if (!n.length) return false;
    const a = pick(r, pick(r, n).attribute as Proto[]);
    a.type = pick(r, [0, 1, 2, 3, 4, 5, 6, 7, 8, 99]);
    return true;
  }],
  ['initializer name emptied', (p, r) => withTensor(p, r, (t) => (t.name = ''))],
];

function nodes(p: Proto): Proto[] {
  return (p.graph?.node as Proto[] | undefined) ?? [];
}

function set(o: Proto | undefined, k: string, v: unknown): boolean {
  if (!o) return false;
  o[k] = v;
  return true;
}

function withInput(p: Proto, r: SeededRandom, f: (n: Proto, i: number) => void): boolean {
  const candidates = nodes(p).filter((n) => n.input?.length);
  if (!candidates.length) return false;
  const n = pick(r, candidates);
  f(n, r.int(n.input.length));
  return true;
}

function withTensor(p: Proto, r: SeededRandom, f: (t: Proto) => unknown): boolean {
  const inits = (p.graph?.initializer as Proto[] | undefined) ?? [];
  if (!inits.length) return false;
  f(pick(r, inits));
  return true;
}

/** A field-level mutant of `bytes`: decode, make one field wrong, encode. */
export function fieldMutant(bytes: Uint8Array, r: SeededRandom): Mutant {
  for (;;) {
    const p = decodeModel(bytes) as Proto;
    const [name, mutate] = pick(r, FIELD_MUTATIONS);
    if (!mutate(p, r)) continue;
    try {
      return { bytes: encodeModel(p as never), how: name };
    } catch {
      // A value the encoder cannot write (a dim past int64) is no input anyone could give.
    }
  }
}
