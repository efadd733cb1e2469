/** ONNX protobuf: schema tables, message types and the lossless codec. */
export * from './schema.ts';
export {
  PROTOBUF_SIZE_LIMIT,
  decodeMessage,
  decodeModel,
  encodeMessage,
  encodeModel,
  encodedSize,
  int64ToNumber,
} from './codec.ts';
