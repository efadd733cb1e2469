/**
 * Field tables for every message of onnx.proto (onnx 1.18+, IR version 10/11), including the
 * onnx-ml `TypeProto.Opaque` and the distributed-inference messages (DeviceConfigurationProto,
 * NodeDeviceConfigurationProto, ShardingSpecProto, ShardedDimProto, SimpleShardedDimProto,
 * IntIntListEntryProto).
 *
 * The tables drive the generic codec in `codec.ts`. Field numbers, names (the proto's snake_case
 * names), kinds and `[packed = true]` options follow onnx.proto exactly. Fields not listed here
 * are still preserved byte-for-byte by the codec (as unknown fields).
 *
 * onnx.proto is a proto2 file: repeated numeric fields are *unpacked* on the wire unless declared
 * `[packed = true]` (only the five TensorProto `*_data` arrays are). The codec reads both forms for
 * every repeated numeric field and writes the form declared here (`packed`), which is what
 * onnx / protobuf-C++ write, so canonical onnx files re-encode byte-identically.
 */

import { AttributeType } from '../ir/attribute.ts';
import { DataType } from '../ir/dtype.ts';

/** Scalar kinds, named after the protobuf scalar types. `enum` is an int32 varint on the wire. */
export type ScalarKind = 'int32' | 'int64' | 'uint64' | 'float' | 'double' | 'string' | 'bytes' | 'enum';
export type FieldKind = ScalarKind | 'message';

export interface FieldDef {
  /** Field number. */
  readonly no: number;
  /** snake_case field name as in onnx.proto; also the property name of decoded objects. */
  readonly name: string;
  readonly kind: FieldKind;
  /** `repeated` field. */
  readonly repeated?: boolean;
  /** For repeated numeric fields: written packed (`[packed = true]` in onnx.proto). */
  readonly packed?: boolean;
  /** For `message` fields: the message type name (a key of {@link SCHEMA}). */
  readonly type?: MessageTypeName;
  /** For `enum` fields (informational): the enum name. */
  readonly enumType?: string;
  /** Name of the `oneof` this field belongs to, if any. */
  readonly oneof?: string;
}

export interface MessageDef {
  /** Type name, e.g. `'ModelProto'` or `'TensorShapeProto.Dimension'`. */
  readonly name: string;
  /** Fields in ascending field-number order. */
  readonly fields: readonly FieldDef[];
}

export type MessageTypeName =
  | 'AttributeProto'
  | 'ValueInfoProto'
  | 'NodeProto'
  | 'IntIntListEntryProto'
  | 'NodeDeviceConfigurationProto'
  | 'ShardingSpecProto'
  | 'ShardedDimProto'
  | 'SimpleShardedDimProto'
  | 'TrainingInfoProto'
  | 'ModelProto'
  | 'DeviceConfigurationProto'
  | 'StringStringEntryProto'
  | 'TensorAnnotation'
  | 'GraphProto'
  | 'TensorProto'
  | 'TensorProto.Segment'
  | 'SparseTensorProto'
  | 'TensorShapeProto'
  | 'TensorShapeProto.Dimension'
  | 'TypeProto'
  | 'TypeProto.Tensor'
  | 'TypeProto.Sequence'
  | 'TypeProto.Map'
  | 'TypeProto.Optional'
  | 'TypeProto.SparseTensor'
  | 'TypeProto.Opaque'
  | 'OperatorSetIdProto'
  | 'FunctionProto';

// ---------------------------------------------------------------------------------------------
// Field-definition helpers (keep the tables below compact and readable).

const str = (no: number, name: string, oneof?: string): FieldDef => ({ no, name, kind: 'string', oneof });
const strs = (no: number, name: string): FieldDef => ({ no, name, kind: 'string', repeated: true });
const byt = (no: number, name: string): FieldDef => ({ no, name, kind: 'bytes' });
const byts = (no: number, name: string): FieldDef => ({ no, name, kind: 'bytes', repeated: true });
const i32 = (no: number, name: string): FieldDef => ({ no, name, kind: 'int32' });
const i64 = (no: number, name: string, oneof?: string): FieldDef => ({ no, name, kind: 'int64', oneof });
const i64s = (no: number, name: string, packed = false): FieldDef => ({ no, name, kind: 'int64', repeated: true, packed });
const enm = (no: number, name: string, enumType: string): FieldDef => ({ no, name, kind: 'enum', enumType });
const msg = (no: number, name: string, type: MessageTypeName, oneof?: string): FieldDef => ({ no, name, kind: 'message', type, oneof });
const msgs = (no: number, name: string, type: MessageTypeName): FieldDef => ({ no, name, kind: 'message', type, repeated: true });

/** All message tables, keyed by type name. Fields are listed in ascending field-number order. */
export const SCHEMA: { readonly [K in MessageTypeName]: MessageDef } = {
  AttributeProto: {
    name: 'AttributeProto',
    // reserved 12, 16 to 19
    fields: [
      str(1, 'name'),
      { no: 2, name: 'f', kind: 'float' },
      i64(3, 'i'),
      byt(4, 's'),
      msg(5, 't', 'TensorProto'),
      msg(6, 'g', 'GraphProto'),
      { no: 7, name: 'floats', kind: 'float', repeated: true, packed: false },
      i64s(8, 'ints'),
      byts(9, 'strings'),
      msgs(10, 'tensors', 'TensorProto'),
      msgs(11, 'graphs', 'GraphProto'),
      str(13, 'doc_string'),
      msg(14, 'tp', 'TypeProto'),
      msgs(15, 'type_protos', 'TypeProto'),
      enm(20, 'type', 'AttributeProto.AttributeType'),
      str(21, 'ref_attr_name'),
      msg(22, 'sparse_tensor', 'SparseTensorProto'),
      msgs(23, 'sparse_tensors', 'SparseTensorProto'),
    ],
  },
  ValueInfoProto: {
    name: 'ValueInfoProto',
    fields: [str(1, 'name'), msg(2, 'type', 'TypeProto'), str(3, 'doc_string'), msgs(4, 'metadata_props', 'StringStringEntryProto')],
  },
  NodeProto: {
    name: 'NodeProto',
    fields: [
      strs(1, 'input'),
      strs(2, 'output'),
      str(3, 'name'),
      str(4, 'op_type'),
      msgs(5, 'attribute', 'AttributeProto'),
      str(6, 'doc_string'),
      str(7, 'domain'),
      str(8, 'overload'),
      msgs(9, 'metadata_props', 'StringStringEntryProto'),
      msgs(10, 'device_configurations', 'NodeDeviceConfigurationProto'),
    ],
  },
  IntIntListEntryProto: {
    name: 'IntIntListEntryProto',
    fields: [i64(1, 'key'), i64s(2, 'value')],
  },
  NodeDeviceConfigurationProto: {
    name: 'NodeDeviceConfigurationProto',
    fields: [str(1, 'configuration_id'), msgs(2, 'sharding_spec', 'ShardingSpecProto'), i32(3, 'pipeline_stage')],
  },
  ShardingSpecProto: {
    name: 'ShardingSpecProto',
    fields: [
      str(1, 'tensor_name'),
      i64s(2, 'device'),
      msgs(3, 'index_to_device_group_map', 'IntIntListEntryProto'),
      msgs(4, 'sharded_dim', 'ShardedDimProto'),
    ],
  },
  ShardedDimProto: {
    name: 'ShardedDimProto',
    fields: [i64(1, 'axis'), msgs(2, 'simple_sharding', 'SimpleShardedDimProto')],
  },
  SimpleShardedDimProto: {
    name: 'SimpleShardedDimProto',
    fields: [i64(1, 'dim_value', 'dim'), str(2, 'dim_param', 'dim'), i64(3, 'num_shards')],
  },
  TrainingInfoProto: {
    name: 'TrainingInfoProto',
    fields: [
      msg(1, 'initialization', 'GraphProto'),
      msg(2, 'algorithm', 'GraphProto'),
      msgs(3, 'initialization_binding', 'StringStringEntryProto'),
      msgs(4, 'update_binding', 'StringStringEntryProto'),
    ],
  },
  ModelProto: {
    name: 'ModelProto',
    fields: [
      i64(1, 'ir_version'),
      str(2, 'producer_name'),
      str(3, 'producer_version'),
      str(4, 'domain'),
      i64(5, 'model_version'),
      str(6, 'doc_string'),
      msg(7, 'graph', 'GraphProto'),
      msgs(8, 'opset_import', 'OperatorSetIdProto'),
      msgs(14, 'metadata_props', 'StringStringEntryProto'),
      msgs(20, 'training_info', 'TrainingInfoProto'),
      msgs(25, 'functions', 'FunctionProto'),
      msgs(26, 'configuration', 'DeviceConfigurationProto'),
    ],
  },
  DeviceConfigurationProto: {
    name: 'DeviceConfigurationProto',
    fields: [str(1, 'name'), i32(2, 'num_devices'), strs(3, 'device')],
  },
  StringStringEntryProto: {
    name: 'StringStringEntryProto',
    fields: [str(1, 'key'), str(2, 'value')],
  },
  TensorAnnotation: {
    name: 'TensorAnnotation',
    fields: [str(1, 'tensor_name'), msgs(2, 'quant_parameter_tensor_names', 'StringStringEntryProto')],
  },
  GraphProto: {
    name: 'GraphProto',
    // reserved 3, 4, 6 to 9
    fields: [
      msgs(1, 'node', 'NodeProto'),
      str(2, 'name'),
      msgs(5, 'initializer', 'TensorProto'),
      str(10, 'doc_string'),
      msgs(11, 'input', 'ValueInfoProto'),
      msgs(12, 'output', 'ValueInfoProto'),
      msgs(13, 'value_info', 'ValueInfoProto'),
      msgs(14, 'quantization_annotation', 'TensorAnnotation'),
      msgs(15, 'sparse_initializer', 'SparseTensorProto'),
      msgs(16, 'metadata_props', 'StringStringEntryProto'),
    ],
  },
  TensorProto: {
    name: 'TensorProto',
    fields: [
      i64s(1, 'dims'),
      i32(2, 'data_type'),
      msg(3, 'segment', 'TensorProto.Segment'),
      { no: 4, name: 'float_data', kind: 'float', repeated: true, packed: true },
      { no: 5, name: 'int32_data', kind: 'int32', repeated: true, packed: true },
      byts(6, 'string_data'),
      i64s(7, 'int64_data', true),
      str(8, 'name'),
      byt(9, 'raw_data'),
      { no: 10, name: 'double_data', kind: 'double', repeated: true, packed: true },
      { no: 11, name: 'uint64_data', kind: 'uint64', repeated: true, packed: true },
      str(12, 'doc_string'),
      msgs(13, 'external_data', 'StringStringEntryProto'),
      enm(14, 'data_location', 'TensorProto.DataLocation'),
      msgs(16, 'metadata_props', 'StringStringEntryProto'),
    ],
  },
  'TensorProto.Segment': {
    name: 'TensorProto.Segment',
    fields: [i64(1, 'begin'), i64(2, 'end')],
  },
  SparseTensorProto: {
    name: 'SparseTensorProto',
    fields: [msg(1, 'values', 'TensorProto'), msg(2, 'indices', 'TensorProto'), i64s(3, 'dims')],
  },
  TensorShapeProto: {
    name: 'TensorShapeProto',
    fields: [msgs(1, 'dim', 'TensorShapeProto.Dimension')],
  },
  'TensorShapeProto.Dimension': {
    name: 'TensorShapeProto.Dimension',
    fields: [i64(1, 'dim_value', 'value'), str(2, 'dim_param', 'value'), str(3, 'denotation')],
  },
  TypeProto: {
    name: 'TypeProto',
    fields: [
      msg(1, 'tensor_type', 'TypeProto.Tensor', 'value'),
      msg(4, 'sequence_type', 'TypeProto.Sequence', 'value'),
      msg(5, 'map_type', 'TypeProto.Map', 'value'),
      str(6, 'denotation'),
      msg(7, 'opaque_type', 'TypeProto.Opaque', 'value'),
      msg(8, 'sparse_tensor_type', 'TypeProto.SparseTensor', 'value'),
      msg(9, 'optional_type', 'TypeProto.Optional', 'value'),
    ],
  },
  'TypeProto.Tensor': {
    name: 'TypeProto.Tensor',
    fields: [i32(1, 'elem_type'), msg(2, 'shape', 'TensorShapeProto')],
  },
  'TypeProto.Sequence': {
    name: 'TypeProto.Sequence',
    fields: [msg(1, 'elem_type', 'TypeProto')],
  },
  'TypeProto.Map': {
    name: 'TypeProto.Map',
    fields: [i32(1, 'key_type'), msg(2, 'value_type', 'TypeProto')],
  },
  'TypeProto.Optional': {
    name: 'TypeProto.Optional',
    fields: [msg(1, 'elem_type', 'TypeProto')],
  },
  'TypeProto.SparseTensor': {
    name: 'TypeProto.SparseTensor',
    fields: [i32(1, 'elem_type'), msg(2, 'shape', 'TensorShapeProto')],
  },
  'TypeProto.Opaque': {
    name: 'TypeProto.Opaque',
    fields: [str(1, 'domain'), str(2, 'name')],
  },
  OperatorSetIdProto: {
    name: 'OperatorSetIdProto',
    fields: [str(1, 'domain'), i64(2, 'version')],
  },
  FunctionProto: {
    name: 'FunctionProto',
    // reserved 2 (since_version), 3 (status)
    fields: [
      str(1, 'name'),
      strs(4, 'input'),
      strs(5, 'output'),
      strs(6, 'attribute'),
      msgs(7, 'node', 'NodeProto'),
      str(8, 'doc_string'),
      msgs(9, 'opset_import', 'OperatorSetIdProto'),
      str(10, 'domain'),
      msgs(11, 'attribute_proto', 'AttributeProto'),
      msgs(12, 'value_info', 'ValueInfoProto'),
      str(13, 'overload'),
      msgs(14, 'metadata_props', 'StringStringEntryProto'),
    ],
  },
};

// ---------------------------------------------------------------------------------------------
// Enums

// The enums are the IR's (one table each, in src/graph/ir); the wire layer re-exports them.
export { AttributeType, DataType };
export type DataType = (typeof DataType)[keyof typeof DataType];
export type AttributeType = (typeof AttributeType)[keyof typeof AttributeType];

/** `TensorProto.DataLocation`. */
export const DataLocation = {
  DEFAULT: 0,
  EXTERNAL: 1,
} as const;
export type DataLocation = (typeof DataLocation)[keyof typeof DataLocation];

// ---------------------------------------------------------------------------------------------
// Message types (decoded shape). Every property is optional: a property is present exactly when
// the field appeared on the wire (decode) / is written when it is not `undefined` (encode).

/**
 * int64 / uint64 values: a `number` when it is a safe integer (|v| <= 2^53 - 1), otherwise a
 * `bigint`. The encoder accepts either for any 64-bit field.
 */
export type Int64 = number | bigint;

/** Base of all decoded messages: unknown fields, verbatim (tag + payload), in wire order. */
export interface ProtoMessage {
  $unknown?: Uint8Array[];
}

export interface AttributeProto extends ProtoMessage {
  name?: string;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  /** Decoded as Float32Array; number[] is accepted by the encoder. */
  floats?: Float32Array | number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  doc_string?: string;
  tp?: TypeProto;
  type_protos?: TypeProto[];
  /** An {@link AttributeType} value. */
  type?: number;
  ref_attr_name?: string;
  sparse_tensor?: SparseTensorProto;
  sparse_tensors?: SparseTensorProto[];
}

export interface ValueInfoProto extends ProtoMessage {
  name?: string;
  type?: TypeProto;
  doc_string?: string;
  metadata_props?: StringStringEntryProto[];
}

export interface NodeProto extends ProtoMessage {
  input?: string[];
  output?: string[];
  name?: string;
  op_type?: string;
  attribute?: AttributeProto[];
  doc_string?: string;
  domain?: string;
  overload?: string;
  metadata_props?: StringStringEntryProto[];
  device_configurations?: NodeDeviceConfigurationProto[];
}

export interface IntIntListEntryProto extends ProtoMessage {
  key?: Int64;
  value?: Int64[];
}

export interface NodeDeviceConfigurationProto extends ProtoMessage {
  configuration_id?: string;
  sharding_spec?: ShardingSpecProto[];
  pipeline_stage?: number;
}

export interface ShardingSpecProto extends ProtoMessage {
  tensor_name?: string;
  device?: Int64[];
  index_to_device_group_map?: IntIntListEntryProto[];
  sharded_dim?: ShardedDimProto[];
}

export interface ShardedDimProto extends ProtoMessage {
  axis?: Int64;
  simple_sharding?: SimpleShardedDimProto[];
}

export interface SimpleShardedDimProto extends ProtoMessage {
  /** oneof `dim` with dim_param. */
  dim_value?: Int64;
  /** oneof `dim` with dim_value. */
  dim_param?: string;
  num_shards?: Int64;
}

export interface TrainingInfoProto extends ProtoMessage {
  initialization?: GraphProto;
  algorithm?: GraphProto;
  initialization_binding?: StringStringEntryProto[];
  update_binding?: StringStringEntryProto[];
}

export interface ModelProto extends ProtoMessage {
  ir_version?: Int64;
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: Int64;
  doc_string?: string;
  graph?: GraphProto;
  opset_import?: OperatorSetIdProto[];
  metadata_props?: StringStringEntryProto[];
  training_info?: TrainingInfoProto[];
  functions?: FunctionProto[];
  configuration?: DeviceConfigurationProto[];
}

export interface DeviceConfigurationProto extends ProtoMessage {
  name?: string;
  num_devices?: number;
  device?: string[];
}

export interface StringStringEntryProto extends ProtoMessage {
  key?: string;
  value?: string;
}

export interface TensorAnnotation extends ProtoMessage {
  tensor_name?: string;
  quant_parameter_tensor_names?: StringStringEntryProto[];
}

export interface GraphProto extends ProtoMessage {
  node?: NodeProto[];
  name?: string;
  initializer?: TensorProto[];
  doc_string?: string;
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  value_info?: ValueInfoProto[];
  quantization_annotation?: TensorAnnotation[];
  sparse_initializer?: SparseTensorProto[];
  metadata_props?: StringStringEntryProto[];
}

export interface TensorProtoSegment extends ProtoMessage {
  begin?: Int64;
  end?: Int64;
}

export interface TensorProto extends ProtoMessage {
  dims?: Int64[];
  /** A {@link DataType} value. */
  data_type?: number;
  segment?: TensorProtoSegment;
  /** Decoded as Float32Array (a copy); number[] is accepted by the encoder. */
  float_data?: Float32Array | number[];
  /** Decoded as Int32Array; number[] is accepted by the encoder. */
  int32_data?: Int32Array | number[];
  /** Views into the decoded buffer. */
  string_data?: Uint8Array[];
  int64_data?: Int64[];
  name?: string;
  /** A view into the decoded buffer (not a copy). */
  raw_data?: Uint8Array;
  /** Decoded as Float64Array (a copy); number[] is accepted by the encoder. */
  double_data?: Float64Array | number[];
  uint64_data?: Int64[];
  doc_string?: string;
  external_data?: StringStringEntryProto[];
  /** A {@link DataLocation} value. */
  data_location?: number;
  metadata_props?: StringStringEntryProto[];
}

export interface SparseTensorProto extends ProtoMessage {
  values?: TensorProto;
  indices?: TensorProto;
  dims?: Int64[];
}

export interface TensorShapeProtoDimension extends ProtoMessage {
  /** oneof `value` with dim_param. */
  dim_value?: Int64;
  /** oneof `value` with dim_value. */
  dim_param?: string;
  denotation?: string;
}

export interface TensorShapeProto extends ProtoMessage {
  dim?: TensorShapeProtoDimension[];
}

export interface TypeProtoTensor extends ProtoMessage {
  elem_type?: number;
  shape?: TensorShapeProto;
}

export interface TypeProtoSequence extends ProtoMessage {
  elem_type?: TypeProto;
}

export interface TypeProtoMap extends ProtoMessage {
  key_type?: number;
  value_type?: TypeProto;
}

export interface TypeProtoOptional extends ProtoMessage {
  elem_type?: TypeProto;
}

export interface TypeProtoSparseTensor extends ProtoMessage {
  elem_type?: number;
  shape?: TensorShapeProto;
}

export interface TypeProtoOpaque extends ProtoMessage {
  domain?: string;
  name?: string;
}

/** `tensor_type`, `sequence_type`, `map_type`, `opaque_type`, `sparse_tensor_type`, `optional_type` form the oneof `value`. */
export interface TypeProto extends ProtoMessage {
  tensor_type?: TypeProtoTensor;
  sequence_type?: TypeProtoSequence;
  map_type?: TypeProtoMap;
  denotation?: string;
  opaque_type?: TypeProtoOpaque;
  sparse_tensor_type?: TypeProtoSparseTensor;
  optional_type?: TypeProtoOptional;
}

export interface OperatorSetIdProto extends ProtoMessage {
  domain?: string;
  version?: Int64;
}

export interface FunctionProto extends ProtoMessage {
  name?: string;
  input?: string[];
  output?: string[];
  attribute?: string[];
  node?: NodeProto[];
  doc_string?: string;
  opset_import?: OperatorSetIdProto[];
  domain?: string;
  attribute_proto?: AttributeProto[];
  value_info?: ValueInfoProto[];
  overload?: string;
  metadata_props?: StringStringEntryProto[];
}

/** Maps each schema type name to its TypeScript interface. */
export interface MessageTypes {
  AttributeProto: AttributeProto;
  ValueInfoProto: ValueInfoProto;
  NodeProto: NodeProto;
  IntIntListEntryProto: IntIntListEntryProto;
  NodeDeviceConfigurationProto: NodeDeviceConfigurationProto;
  ShardingSpecProto: ShardingSpecProto;
  ShardedDimProto: ShardedDimProto;
  SimpleShardedDimProto: SimpleShardedDimProto;
  TrainingInfoProto: TrainingInfoProto;
  ModelProto: ModelProto;
  DeviceConfigurationProto: DeviceConfigurationProto;
  StringStringEntryProto: StringStringEntryProto;
  TensorAnnotation: TensorAnnotation;
  GraphProto: GraphProto;
  TensorProto: TensorProto;
  'TensorProto.Segment': TensorProtoSegment;
  SparseTensorProto: SparseTensorProto;
  TensorShapeProto: TensorShapeProto;
  'TensorShapeProto.Dimension': TensorShapeProtoDimension;
  TypeProto: TypeProto;
  'TypeProto.Tensor': TypeProtoTensor;
  'TypeProto.Sequence': TypeProtoSequence;
  'TypeProto.Map': TypeProtoMap;
  'TypeProto.Optional': TypeProtoOptional;
  'TypeProto.SparseTensor': TypeProtoSparseTensor;
  'TypeProto.Opaque': TypeProtoOpaque;
  OperatorSetIdProto: OperatorSetIdProto;
  FunctionProto: FunctionProto;
}

// Compile-time check that MessageTypes and MessageTypeName list the same names.
type _SameKeys = [MessageTypeName] extends [keyof MessageTypes] ? ([keyof MessageTypes] extends [MessageTypeName] ? true : never) : never;
const _sameKeys: _SameKeys = true;
void _sameKeys;
