// The built-in text calibration source on the stories260K-hf fixture (read only): feeds made
// with the folder's own tokenizer, in the shapes the graph declares.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph } from '../../src/graph/ir/graph.ts';
import { Model } from '../../src/graph/ir/model.ts';
import { Value } from '../../src/graph/ir/value.ts';
import { loadModel } from '../../src/graph/serde/io.ts';
import { contextFor } from '../../src/passes/calibration/samples.ts';
import { readPrompts } from '../../src/hf/prompt-list.ts';
import { findTokenizerFolder, textCalibration } from '../../src/hf/text-calibration.ts';
import { runCli } from '../helpers/cli-process.ts';
import { FIXTURE } from './helpers.ts';

const tmp = mkdtempSync(join(tmpdir(), 'qarvd-hf-text-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const ONNX_DIR = join(FIXTURE, 'onnx');

function promptsFile(name: string, text: string): string {
  const f = join(tmp, name);
  writeFileSync(f, text);
  return f;
}

async function firstFeeds(calib: Awaited<ReturnType<typeof textCalibration>>, sample: number) {
  const out = [];
  for await (const s of calib.module.feeds!(contextFor(calib, sample))) out.push(s.feeds);
  expect(out).toHaveLength(1);
  return out[0]!;
}

describe('text calibration from a prompt list', () => {
  it('reads one prompt a line, skipping blank lines', () => {
    expect(readPrompts(promptsFile('p.txt', 'Once upon a time\r\n\n  Lily went  \n'))).toEqual(['Once upon a time', 'Lily went']);
  });

  it('reads a JSON array of strings as one prompt an item, line breaks kept, and JSON Lines with a text field (a user trial: a JSON array was read as one prompt)', () => {
    expect(readPrompts(promptsFile('p.json', '["Once upon a time", "Lily went\\nto the park"]\n'))).toEqual(['Once upon a time', 'Lily went\nto the park']);
    // Not named .json: still JSON when the whole text is a JSON array...
    expect(readPrompts(promptsFile('array.txt', ' ["a", "b"]'))).toEqual(['a', 'b']);
    // ...and one prompt a line when it is not, even if a line starts with '['.
    expect(readPrompts(promptsFile('brackets.txt', '[Lily] went home\nTim ran\n'))).toEqual(['[Lily] went home', 'Tim ran']);
    // A text file whose one line is a JSON array of other things is that line (found by review: it was refused).
    expect(readPrompts(promptsFile('numbers.txt', '[1, 2]\n'))).toEqual(['[1, 2]']);
    expect(readPrompts(promptsFile('p.jsonl', '{"text": "Once upon a time"}\n\n"Tim ran"\n{"prompt": "Lily went"}\n'))).toEqual(['Once upon a time', 'Tim ran', 'Lily went']);
  });

  it('refuses JSON prompt lists it cannot read, naming the item or line', () => {
    const refused = (name: string, text: string, message: RegExp) => expect(() => readPrompts(promptsFile(name, text))).toThrow(message);
    refused('bad.json', '["a", ', /prompt list .*bad\.json: is not valid JSON \(.+\): give a JSON array of strings/);
    refused('object.json', '{"prompts": ["a"]}', /object\.json: holds a JSON object, not an array of strings/);
    refused('numbers.json', '["a", 3]', /numbers\.json: item 2 of the JSON array is number, not a string/);
    refused('blank.json', '["a", "  "]', /blank\.json: item 2 of the JSON array is an empty prompt/);
    refused('empty.json', '[]', /empty\.json: has no prompts/);
    // What datasets' to_json() writes by default, named .json: a hint to name it .jsonl (found by review).
    refused('lines.json', '{"text": "a"}\n{"text": "b"}\n', /lines\.json: is not valid JSON \(.+\) \(one JSON value a line is JSON Lines: name the file \.jsonl\)/);
    // A pretty-printed object, or one with a syntax error, is not JSON Lines (found by review: it was told to be renamed).
    for (const [name, text] of [['pretty.json', '{\n "prompts": ["a cat", "a dog"]\n}\n'], ['comma.json', '{\n "prompts": ["a cat",]\n}\n']]) {
      expect(() => readPrompts(promptsFile(name!, text!))).toThrow(new RegExp(`${name!.replace('.', '\\.')}: (holds a JSON object|is not valid JSON)`));
      expect(() => readPrompts(promptsFile(name!, text!))).not.toThrow(/JSON Lines/);
    }
    refused('bad.jsonl', '"a"\n{"text": 1}\n', /bad\.jsonl: line 2 is neither a JSON string nor an object with a string "text" or "prompt" field/);
    refused('broken.jsonl', '"a"\nOnce upon\n', /broken\.jsonl: line 2 is not valid JSON/);
  });

  it('refuses a UTF-16 file and a legacy 8-bit encoding by name (a review and a user trial: "not a text file (a NUL byte…)", and accented letters silently replaced), and takes UTF-8 with a BOM', () => {
    const write = (name: string, bytes: Buffer) => {
      const f = join(tmp, name);
      writeFileSync(f, bytes);
      return f;
    };
    const utf16 = write('utf16.txt', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('Once upon a time\n', 'utf16le')]));
    expect(() => readPrompts(utf16)).toThrow(/prompt list .*utf16\.txt: is UTF-16 text \(its byte-order mark says so\): save it as UTF-8/);
    const latin1 = write('latin1.txt', Buffer.from('Once upon a time\nZoë went to the café\n', 'latin1'));
    expect(() => readPrompts(latin1)).toThrow(/latin1\.txt: line 2 is not UTF-8 \(Latin-1 or another legacy encoding\?\): save the file as UTF-8/);
    // A valid line holding U+FFFD itself is not the one named (found by review).
    const mixed = write('mixed.txt', Buffer.concat([Buffer.from('Once upon a \uFFFD time\n'), Buffer.from('Zoë went\n', 'latin1')]));
    expect(() => readPrompts(mixed)).toThrow(/mixed\.txt: line 2 is not UTF-8/);
    const bom = write('bom.txt', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('Zoë went\nTim ran\n')]));
    expect(readPrompts(bom)).toEqual(['Zoë went', 'Tim ran']);
  });

  it('refuses a binary file (a model given by mistake) and a prompt longer than the model takes, naming the line (found by a user trial: a raw onnxruntime Gather error after calibrating, or thousands of garbage prompts)', async () => {
    const model = loadModel(join(ONNX_DIR, 'model.onnx'));
    await expect(textCalibration(model, join(ONNX_DIR, 'model.onnx'), ONNX_DIR)).rejects.toThrow(/prompt list .*model\.onnx: is not a text file \(a NUL byte at offset \d+\)/);
    // stories260K-hf: max_position_embeddings 512 in config.json.
    const long = promptsFile('long.txt', `Once upon a time\n\n${Array(700).fill('little girl').join(' ')}\n`);
    await expect(textCalibration(model, long, ONNX_DIR)).rejects.toThrow(/prompts .*long\.txt.*: line 3 has \d{4} tokens, over the model's 512 \(max_position_embeddings in config\.json\): shorten or split it/);
  });

  it('refuses a line of megabytes before tokenizing it (a user trial: 97 s to tokenize a 5 MB line, then the refusal; minutes and gigabytes for 20 MB)', async () => {
    const model = loadModel(join(ONNX_DIR, 'model.onnx'));
    // 512 tokens × 64 characters a token, plus one.
    const huge = promptsFile('huge.txt', `Once upon a time\n${'a'.repeat(512 * 64 + 1)}\n`);
    await expect(textCalibration(model, huge, ONNX_DIR)).rejects.toThrow(/prompts .*huge\.txt.*: line 2 has 32769 characters, far over the 512 tokens the model takes \(max_position_embeddings in config\.json\): shorten or split it/);
  });

  it('hears Ctrl-C while a long prompt list is tokenized (a user trial: the signal waited until tokenizing ended)', async () => {
    const folder = join(tmp, 'signal-model');
    cpSync(FIXTURE, folder, { recursive: true });
    // About a minute of tokenizing on this machine (40,000 took 11 s), printing nothing.
    const list = promptsFile('many.txt', Array.from({ length: 200_000 }, (_, i) => `Once upon a time there was a little girl called Lily number ${i} who went to the park`).join('\n'));
    const r = await runCli([folder, '--variant', 'q8', '--pass', 'q-arvd', '--q-arvd.prompts', list], { timeoutMs: 120_000, signalAfter: { signal: 'SIGINT', ms: 5000 } });
    // Heard at once, not after the list (the bound leaves a slow machine 3× the margin).
    expect(r.ms, r.stderr).toBeLessThan(20_000);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/convert: interrupted \(SIGINT\); the model was not written/);
    expect(readdirSync(join(folder, 'onnx')).sort()).toEqual(['model.onnx']);
  });

  it('finds the tokenizer beside the graph or in the folder above onnx/', () => {
    expect(findTokenizerFolder(ONNX_DIR)).toBe(FIXTURE);
    expect(findTokenizerFolder(FIXTURE)).toBe(FIXTURE);
    expect(findTokenizerFolder(tmp)).toBeUndefined();
  });

  it('makes input_ids (with BOS, as add_bos_token says), attention_mask, position_ids and empty past_key_values of the declared shapes', async () => {
    const model = loadModel(join(ONNX_DIR, 'model.onnx'));
    const calib = await textCalibration(model, promptsFile('two.txt', 'Once upon a time\nLily went to the park\n'), ONNX_DIR);
    expect(calib.samples).toBe(2);
    expect(calib.origin).toMatch(/^prompts .*two\.txt \(tokenizer .*stories260K-hf\)$/);
    const feeds = await firstFeeds(calib, 0);
    expect(Object.keys(feeds).sort()).toEqual(model.graph.inputs.map((v) => v.name).sort());
    expect(feeds.input_ids!.type).toBe('int64');
    expect(feeds.input_ids!.dims).toEqual([1, 5]);
    // The ids the transformers.js pipeline feeds for this prompt (fixture README).
    expect(Array.from(feeds.input_ids!.data as BigInt64Array, Number)).toEqual([1, 403, 407, 261, 378]);
    expect(Array.from(feeds.attention_mask!.data as BigInt64Array, Number)).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(feeds.position_ids!.data as BigInt64Array, Number)).toEqual([0, 1, 2, 3, 4]);
    for (let l = 0; l < 5; l++) {
      for (const kv of ['key', 'value']) {
        const t = feeds[`past_key_values.${l}.${kv}`]!;
        expect(t.type).toBe('float32');
        expect(t.dims).toEqual([1, 4, 0, 8]);
      }
    }
    const second = await firstFeeds(calib, 1);
    expect(second.input_ids!.dims[1]).toBeGreaterThan(5);
  });

  it('leaves BOS out when the tokenizer config does not ask for it', async () => {
    const dir = join(tmp, 'no-bos');
    cpSync(FIXTURE, dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...config, add_bos_token: false }));
    const calib = await textCalibration(loadModel(join(dir, 'onnx', 'model.onnx')), promptsFile('one.txt', 'Once upon a time\n'), join(dir, 'onnx'));
    const feeds = await firstFeeds(calib, 0);
    expect(Array.from(feeds.input_ids!.data as BigInt64Array, Number)).toEqual([403, 407, 261, 378]);
  });

  it('refuses a graph input it cannot make from text, naming it, and a folder without a tokenizer', async () => {
    const m = new Model(new Graph({ name: 'main' }), { opset: 17 });
    m.graph.addInput(new Value('input_ids', { type: { tensor_type: { elem_type: DataType.INT64 } } }));
    m.graph.addInput(new Value('pixel_values', { type: { tensor_type: { elem_type: DataType.FLOAT } } }));
    const p = promptsFile('one.txt', 'Once upon a time\n');
    await expect(textCalibration(m, p, ONNX_DIR)).rejects.toThrow(/cannot make the graph input 'pixel_values' from text: .*give a calibration module with calib instead/);
    await expect(textCalibration(m, p, tmp)).rejects.toThrow(/needs the model's tokenizer, and there is no tokenizer\.json in/);
  });
});
