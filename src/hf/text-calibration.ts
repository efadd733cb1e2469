/**
 * The built-in calibration source for text models (`--q-arvd.prompts prompts.txt`): a prompt
 * list, one prompt a line, tokenized with the model folder's own tokenizer through
 * `@huggingface/transformers`, offline.
 *
 * Rules:
 * 1. The tokenizer is the one in the model's folder or its parent (a graph in `onnx/` uses the
 *    folder above); `env.allowRemoteModels` is off while it loads (`local_files_only`).
 * 2. Special tokens are added exactly when the text-generation pipeline adds them: when the
 *    tokenizer config sets `add_bos_token` (or `add_eos_token`).
 * 3. Each prompt is one sample of batch 1 with an empty cache: `input_ids` [1, L],
 *    `attention_mask` ones [1, L], `position_ids` 0…L−1, `token_type_ids` zeros, every
 *    `past_*` input (`past_key_values.N.key`, …) empty in the shape the graph declares with its
 *    batch dimension 1 and its other symbolic dimension (the past length) 0, and
 *    `use_cache_branch` false. Integer inputs follow the graph's element type (int64 or int32).
 * 4. A graph input it cannot make from text is refused up front, naming the input.
 * 5. The prompt list is read as prompt-list.ts says (text, JSON or JSON Lines; UTF-8).
 */
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { DataType, dtypeName } from '../graph/ir/dtype.ts';
import type { Model } from '../graph/ir/model.ts';
import type { Value } from '../graph/ir/value.ts';
import { linkedOutside } from '../graph/serde/data-file.ts';
import { specialFileKind } from '../graph/serde/file-kind.ts';
import { letSignalsRun } from '../graph/serde/temp-files.ts';
import { CalibrationError, type CalibrationModule, type FeedSample, type LoadedCalibration } from '../passes/calibration/module.ts';
import { importOnnxruntime, importTransformers } from '../runtime/optional-import.ts';
import { readPromptList } from './prompt-list.ts';

/**
 * The longest input the model in `folder` takes, from its `config.json` (`max_position_embeddings`,
 * or GPT-2's `n_positions`), else the tokenizer's `model_max_length` when it is a real bound.
 */
function contextLength(folder: string): { tokens: number; from: string } | undefined {
  const read = (name: string): Record<string, unknown> | undefined => {
    try {
      return JSON.parse(readFileSync(join(folder, name), 'utf8')) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  };
  const config = read('config.json');
  for (const key of ['max_position_embeddings', 'n_positions']) {
    const v = config?.[key];
    if (typeof v === 'number' && Number.isInteger(v) && v > 0) return { tokens: v, from: `${key} in config.json` };
  }
  // transformers writes a huge sentinel (1e30) when the tokenizer has no bound.
  const v = read('tokenizer_config.json')?.model_max_length;
  if (typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 1e7) return { tokens: v, from: 'model_max_length in tokenizer_config.json' };
  return undefined;
}

/**
 * Characters a token covers at most, for refusing an over-long prompt before tokenizing it:
 * far above what real vocabularies reach (English BPE averages about 4), so that only a
 * prompt that cannot fit is refused this way.
 */
const MAX_CHARS_PER_TOKEN = 64;

/** The files of a tokenizer folder that transformers.js may read. */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'config.json', 'vocab.json', 'merges.txt', 'tokenizer.model'];

/** The folder holding the tokenizer of a graph in `modelDir`: the folder itself or its parent. */
export function findTokenizerFolder(modelDir: string): string | undefined {
  for (const d of [modelDir, dirname(modelDir)]) {
    if (existsSync(join(d, 'tokenizer.json')) || existsSync(join(d, 'tokenizer_config.json'))) return d;
  }
  return undefined;
}

/**
 * Refuses, by name, a tokenizer file that is not a regular file (reading a FIFO or device would
 * block for good) or that a symlink puts outside the tokenizer's folder: the tokenizer is found
 * beside the model, not named by the user, so it is untrusted as the model's external data is,
 * under the same rule (a Hugging Face hub cache's links into the repository's `blobs/` are read).
 */
function checkTokenizerFiles(folder: string, origin: string): void {
  for (const name of TOKENIZER_FILES) {
    const path = join(folder, name);
    if (!existsSync(path)) continue;
    const st = statSync(path);
    if (!st.isFile()) throw new CalibrationError(origin, `the tokenizer's ${path} is ${st.isDirectory() ? 'a folder' : specialFileKind(st)}, not a regular file`);
    const target = linkedOutside(folder, path);
    if (target) {
      throw new CalibrationError(origin, `the tokenizer's ${path} links outside its folder (to ${target}); refusing to read it (copy the folder with its links followed, cp -rL, if you trust them)`);
    }
  }
}

/** What a tokenizer gives for a prompt list. */
export interface TokenizedPrompts {
  folder: string;
  ids: number[][];
  addSpecialTokens: boolean;
}

/** Tokenizes prompts with the tokenizer of `folder` (rules 1–2), offline. */
export async function tokenizePrompts(folder: string, prompts: readonly string[]): Promise<TokenizedPrompts> {
  const { AutoTokenizer, env } = await importTransformers();
  const remote = env.allowRemoteModels;
  env.allowRemoteModels = false;
  let tokenizer;
  try {
    tokenizer = await AutoTokenizer.from_pretrained(resolve(folder), { local_files_only: true });
  } catch (e) {
    throw new CalibrationError(`tokenizer ${folder}`, `cannot be loaded with @huggingface/transformers: ${(e as Error).message}`);
  } finally {
    env.allowRemoteModels = remote;
  }
  const addSpecialTokens = Boolean(tokenizer.add_bos_token || tokenizer.add_eos_token);
  const ids: number[][] = [];
  for (const p of prompts) {
    ids.push(tokenizer.encode(p, { add_special_tokens: addSpecialTokens }));
    // Tokenizing is synchronous: a Ctrl-C during a long list is heard between prompts.
    await letSignalsRun();
  }
  return { folder, ids, addSpecialTokens };
}

/**
 * A calibration module whose samples are the prompts of `promptsFile`, tokenized with the
 * tokenizer beside the model, shaped for `model`'s inputs (rules 3–4).
 * @param modelDir folder of the model file (the tokenizer is looked for there and above)
 */
export async function textCalibration(model: Model, promptsFile: string, modelDir: string | undefined): Promise<LoadedCalibration> {
  const origin = `prompts ${promptsFile}`;
  const { prompts, where } = readPromptList(promptsFile);
  const dir = modelDir ?? process.cwd();
  const folder = findTokenizerFolder(dir);
  if (!folder) throw new CalibrationError(origin, `needs the model's tokenizer, and there is no tokenizer.json in ${dir} or ${dirname(dir)}`);
  checkTokenizerFiles(folder, origin);
  const { Tensor } = await importOnnxruntime('text calibration (--q-arvd.prompts)');
  const makers = model.graph.inputs.map((v) => inputMaker(v, origin, Tensor));
  const limit = contextLength(folder);
  // Tokenizing one line of megabytes takes minutes and cannot be interrupted: a prompt far
  // longer in characters than the model takes in tokens is refused before it is tokenized.
  const huge = limit ? prompts.findIndex((p) => p.length > limit.tokens * MAX_CHARS_PER_TOKEN) : -1;
  if (huge >= 0) {
    throw new CalibrationError(origin, `${where[huge]} has ${prompts[huge]!.length} characters, far over the ${limit!.tokens} tokens the model takes (${limit!.from}): shorten or split it`);
  }
  const { ids } = await tokenizePrompts(folder, prompts);
  const empty = ids.findIndex((t) => t.length === 0);
  if (empty >= 0) throw new CalibrationError(origin, `${where[empty]} ('${prompts[empty]}') has no tokens`);
  const long = limit ? ids.findIndex((t) => t.length > limit.tokens) : -1;
  if (long >= 0) {
    throw new CalibrationError(origin, `${where[long]} has ${ids[long]!.length} tokens, over the model's ${limit!.tokens} (${limit!.from}): shorten or split it`);
  }
  const module: CalibrationModule = {
    samples: prompts.length,
    prompts,
    *feeds(ctx): Iterable<FeedSample> {
      const tokens = ids[ctx.sample % ids.length]!;
      yield { feeds: Object.fromEntries(makers.map((m) => [m.name, m.make(tokens)])) };
    },
  };
  return { module, origin: `${origin} (tokenizer ${folder})`, source: `prompts ${realpathSync(promptsFile)} (tokenizer ${realpathSync(folder)})`, samples: prompts.length };
}

interface InputMaker {
  name: string;
  make(tokens: readonly number[]): ort.Tensor;
}

/** How to make one graph input from a prompt's tokens (rule 3), or a refusal (rule 4). */
function inputMaker(v: Value, origin: string, Tensor: typeof ort.Tensor): InputMaker {
  const name = v.name;
  const type = v.elemType();
  const refuse = (why: string): never => {
    throw new CalibrationError(origin, `cannot make the graph input '${name}' from text: ${why}; give a calibration module with calib instead`);
  };
  const intInput = (value: (tokens: readonly number[], i: number) => number): InputMaker => {
    if (type !== DataType.INT64 && type !== DataType.INT32) refuse(`it is ${type === undefined ? 'of unknown type' : dtypeName(type)}, expected int64 or int32`);
    return {
      name,
      make: (tokens) => {
        const L = tokens.length;
        if (type === DataType.INT64) return new Tensor('int64', BigInt64Array.from({ length: L }, (_, i) => BigInt(value(tokens, i))), [1, L]);
        return new Tensor('int32', Int32Array.from({ length: L }, (_, i) => value(tokens, i)), [1, L]);
      },
    };
  };
  if (name === 'input_ids') return intInput((t, i) => t[i]!);
  if (name === 'attention_mask') return intInput(() => 1);
  if (name === 'position_ids') return intInput((_, i) => i);
  if (name === 'token_type_ids') return intInput(() => 0);
  if (name === 'use_cache_branch') {
    if (type !== DataType.BOOL) refuse('expected a bool');
    return { name, make: () => new Tensor('bool', new Uint8Array([0]), [1]) };
  }
  if (name.startsWith('past_')) {
    const shape = v.shape();
    if (!shape) refuse('the graph does not declare its shape');
    const dims = shape!.map((d, axis) => (typeof d === 'number' ? d : (d ?? '').toLowerCase().includes('batch') || (d === undefined && axis === 0) ? 1 : 0));
    if (type === DataType.FLOAT) return { name, make: () => new Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims) };
    if (type === DataType.FLOAT16) return { name, make: () => new Tensor('float16', new Uint16Array(dims.reduce((a, b) => a * b, 1)), dims) };
    refuse(`it is ${type === undefined ? 'of unknown type' : dtypeName(type)}, expected float32 or float16`);
  }
  return refuse('the text source makes input_ids, attention_mask, position_ids, token_type_ids, past_* and use_cache_branch');
}
