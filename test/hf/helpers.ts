// Shared by the Hugging Face folder tests: a scratch copy of the stories260K-hf fixture (the
// tests never write into test/fixtures), the CLI in-process, file hashes, and greedy
// generation through transformers.js' text-generation pipeline with the file it loaded.
import { cpSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { vi } from 'vitest';
import { sha256File } from '../helpers/files.ts';
export { cli } from '../helpers/cli.ts';

export const FIXTURE = resolve('test/fixtures/stories260K-hf');
export const PROMPT = 'Once upon a time';
/** The fp32 greedy continuation of PROMPT measured when the fixture was made (its README). */
export const FP32_TOKENS = [432, 383, 286, 261, 376, 298, 315, 421, 395, 317];

/** Prompts for calibration: TinyStories-like openings, none of them PROMPT. */
export const CALIBRATION_PROMPTS = [
  'Lily went to the park with her mom',
  'The little dog was very happy',
  'Tom had a big red ball',
  'One day, a bird flew over the house',
  'She wanted to play with her friends',
  'The sun was shining and the sky was blue',
  'Ben and Mia found a box in the garden',
  'There was a small cat who liked to sleep',
];

/** A fresh scratch folder with a copy of the fixture as `<scratch>/model`. */
export function copyFixture(prefix: string): { root: string; model: string } {
  const root = mkdtempSync(join(tmpdir(), `qarvd-${prefix}-`));
  const model = join(root, 'model');
  cpSync(FIXTURE, model, { recursive: true });
  return { root, model };
}


/** SHA-256 of every file under `dir` (relative path → hash); folders are listed as `dir/` → 'folder'. */
export function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const f of readdirSync(d).sort()) {
      const p = join(d, f);
      const st = statSync(p);
      if (st.isDirectory()) {
        out[`${rel}${f}/`] = 'folder';
        walk(p, `${rel}${f}/`);
      }
      // A FIFO is recorded, not read (reading it would block).
      else out[`${rel}${f}`] = st.isFile() ? sha256File(p) : 'not a regular file';
    }
  };
  walk(dir, '');
  return out;
}

/** What a greedy run through the pipeline gave. */
export interface Greedy {
  /** The model file onnxruntime was asked to open. */
  file: string;
  tokens: number[];
  text: string;
}

/**
 * Loads `pipeline('text-generation', dir, options)` offline and continues PROMPT greedily
 * by `n` tokens. The file it loaded is read off `InferenceSession.create` (transformers.js
 * hands onnxruntime-node the path in Node).
 */
export async function greedy(dir: string, options: Record<string, unknown>, n = 10): Promise<Greedy> {
  const { env, pipeline } = await import('@huggingface/transformers');
  env.allowRemoteModels = false;
  env.localModelPath = `${dirname(resolve(dir))}/`;
  const spy = vi.spyOn(ort.InferenceSession, 'create');
  try {
    const generator = await pipeline('text-generation', basename(dir), options);
    const calls = spy.mock.calls;
    const file = calls.length ? String(calls[calls.length - 1]![0]) : '(none)';
    const inputs = generator.tokenizer(PROMPT);
    const promptLength = (inputs.input_ids.dims as number[])[1]!;
    const out = (await generator.model.generate({ ...inputs, max_new_tokens: n, do_sample: false })) as { tolist(): bigint[][] };
    const ids = out.tolist()[0]!.map(Number);
    const text = generator.tokenizer.decode(ids, { skip_special_tokens: true });
    await generator.dispose();
    return { file, tokens: ids.slice(promptLength), text };
  } finally {
    spy.mockRestore();
  }
}

/** Positions at which two token lists agree. */
export function agreement(a: readonly number[], b: readonly number[]): number {
  return a.reduce((s, t, i) => s + (t === b[i] ? 1 : 0), 0);
}
