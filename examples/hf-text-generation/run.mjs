#!/usr/bin/env node
// The whole chain for a transformers.js text-generation folder, as a build script writes it:
// quantize the exported model with q-arvd into its q8 variant, then load that variant with
// @huggingface/transformers and generate.
//
//   node run.mjs [model folder]     (default: ./model beside this script)
import { spawnSync } from 'node:child_process';
import { basename, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { env, pipeline } from '@huggingface/transformers';

const here = dirname(fileURLToPath(import.meta.url));
const modelDir = resolve(process.argv[2] ?? resolve(here, 'model'));
const prompts = resolve(here, 'prompts.txt');
// In your own project this is `npx convert`; in this checkout it is bin/convert.js.
const convert = resolve(here, '../../bin/convert.js');

// 1. Quantize: onnx/model.onnx (and every other fp32 graph in onnx/) gets
//    onnx/model_quantized.onnx beside it, calibrated on prompts.txt through the folder's own
//    tokenizer. --force lets the script run again; the fp32 files are never written.
const args = [modelDir, '--pass', 'q-arvd', '--variant', 'q8', '--q-arvd.prompts', prompts, '--force'];
console.log(`$ convert ${args.join(' ')}`);
const r = spawnSync(process.execPath, [convert, ...args], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

// 2. Load the q8 variant offline and continue a prompt greedily; fp32 alongside for comparison.
env.allowRemoteModels = false;
env.localModelPath = `${dirname(modelDir)}/`;
for (const dtype of ['q8', 'fp32']) {
  const generator = await pipeline('text-generation', basename(modelDir), { dtype });
  const [out] = await generator('Once upon a time', { max_new_tokens: 10, do_sample: false });
  console.log(`${dtype.padEnd(4)}: ${out.generated_text}`);
  await generator.dispose();
}
