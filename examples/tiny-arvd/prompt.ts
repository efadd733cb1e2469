/**
 * The tiny-arvd model's metadata and its prompt encoding (README → "Prompt encoding").
 *
 * A prompt is four words, `shape colour speed count`; its token ids are
 * `[shape, 2 + colour, 6 + speed, 8 + count]` and `text_emb` stacks `text_table[id]`.
 * `tiny-arvd-l` shares the encoding; only its `meta.json` (its own `text_table`) differs, so
 * the functions take the metadata as a parameter (default: tiny-arvd's).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The fields of `meta.json` this example uses. */
export interface TinyArvdMeta {
  frames: number;
  chunk_frames: number;
  chunks: number;
  channels: number;
  height: number;
  width: number;
  text_len: number;
  text_dim: number;
  vocab: string[];
  text_table: number[][];
  sampler: { kind: string; timesteps: number[]; update: string };
}

/** Absolute path of the bundled fp32 model. */
export const MODEL_PATH = fileURLToPath(new URL('./model.onnx', import.meta.url));

/** Reads the `meta.json` of a model folder (a `file:` URL ending in `/`). */
export function readMeta(folder: URL): TinyArvdMeta {
  return JSON.parse(readFileSync(new URL('./meta.json', folder), 'utf8')) as TinyArvdMeta;
}

/** The parsed `meta.json` of tiny-arvd. */
export const meta: TinyArvdMeta = readMeta(new URL('./', import.meta.url));

/** The valid words of each prompt position, in index order. */
export const WORDS = {
  shape: ['square', 'disc'],
  colour: ['red', 'green', 'blue', 'yellow'],
  speed: ['slow', 'fast'],
  count: ['one', 'two'],
} as const;

const SLOTS = ['shape', 'colour', 'speed', 'count'] as const;
/** Token id of word index 0 in each slot. */
const OFFSETS = [0, 2, 6, 8];

/**
 * Token ids of a four-word prompt, e.g. `"disc red fast two"` → `[1, 2, 7, 9]`.
 * @throws Error naming the bad word and listing the valid ones.
 */
export function encodePrompt(prompt: string): number[] {
  const words = prompt.trim().toLowerCase().split(/\s+/).filter((w) => w.length > 0);
  if (words.length !== SLOTS.length) {
    throw new Error(
      `tiny-arvd prompt "${prompt}" has ${words.length} words; expected 4: ` +
        `<${WORDS.shape.join('|')}> <${WORDS.colour.join('|')}> <${WORDS.speed.join('|')}> <${WORDS.count.join('|')}>`,
    );
  }
  return words.map((word, i) => {
    const valid: readonly string[] = WORDS[SLOTS[i]];
    const index = valid.indexOf(word);
    if (index < 0) {
      throw new Error(
        `tiny-arvd prompt "${prompt}": word ${i + 1} "${word}" is not a valid ${SLOTS[i]}; ` +
          `valid ${SLOTS[i]} words: ${valid.join(', ')}`,
      );
    }
    return OFFSETS[i] + index;
  });
}

/** `text_emb` for a prompt: the `text_table` rows of its token ids, shape [1, 4, 32]. */
export function textEmbedding(prompt: string, m: TinyArvdMeta = meta): Float32Array {
  const ids = encodePrompt(prompt);
  const out = new Float32Array(m.text_len * m.text_dim);
  ids.forEach((id, i) => out.set(m.text_table[id], i * m.text_dim));
  return out;
}
