/**
 * onnxruntime's quantizer recipes (`onnxruntime-recipe.ts`) from the command line, for the
 * quality table's child processes and for hand use:
 *
 *   node --import tsx bench/peers/onnxruntime-recipe-cli.ts model.onnx -o out.onnx \
 *     --recipe static --calib examples/tiny-arvd/rollout.ts
 *   node --import tsx bench/peers/onnxruntime-recipe-cli.ts model.onnx -o out.onnx \
 *     --recipe nbits --block-size 32 --accuracy-level 4
 *   node --import tsx bench/peers/onnxruntime-recipe-cli.ts model.onnx -o out.onnx --recipe dynamic
 */
import { parseArgs } from 'node:util';
import { quantizeDynamicInt8, quantizeMatMulNBits, quantizeStaticQdq, recordCalibrationFeeds } from './onnxruntime-recipe.ts';

/** The recipes this command runs. */
export const RECIPES = ['static', 'nbits', 'dynamic'] as const;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    output: { type: 'string', short: 'o' },
    recipe: { type: 'string' },
    calib: { type: 'string' },
    'block-size': { type: 'string', default: '128' },
    'accuracy-level': { type: 'string', default: '0' },
    symmetric: { type: 'boolean', default: false },
  },
});
const [model] = positionals;
const recipe = values.recipe as (typeof RECIPES)[number];
if (!model || !values.output || !RECIPES.includes(recipe)) {
  throw new Error(`usage: onnxruntime-recipe-cli <model.onnx> -o <out.onnx> --recipe ${RECIPES.join('|')} [--calib module] [--block-size n] [--accuracy-level n] [--symmetric]`);
}
const int = (name: 'block-size' | 'accuracy-level'): number => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${values[name]}`);
  return n;
};
if (recipe === 'static') {
  if (!values.calib) throw new Error('--recipe static needs --calib (a calibration module)');
  const feeds = await recordCalibrationFeeds(model, values.calib);
  await quantizeStaticQdq(model, values.output, { calibration: feeds });
} else if (recipe === 'nbits') {
  quantizeMatMulNBits(model, values.output, { blockSize: int('block-size'), accuracyLevel: int('accuracy-level'), isSymmetric: values.symmetric });
} else {
  quantizeDynamicInt8(model, values.output);
}
