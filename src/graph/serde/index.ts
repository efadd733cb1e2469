export * from './errors.ts';
export * from './io.ts';
export { EXTERNAL_THRESHOLD_BYTES } from './external-sink.ts';
