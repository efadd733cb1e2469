/**
 * The heavy runtimes (onnxruntime-node's native binding, @huggingface/transformers) are
 * imported here, on first use, and never at module load: `convert --help`, `convert passes`,
 * `diff`, `inspect` and weight-only conversions must not pay for them (issue 16), and
 * @huggingface/transformers is an optional peer dependency that may not be installed.
 */
import { MissingPackageError } from './missing-package.ts';

type Ort = typeof import('onnxruntime-node');
type Transformers = typeof import('@huggingface/transformers');

/** onnxruntime-node, imported on first use (a dependency of qarvd, so normally present). */
export async function importOnnxruntime(neededFor = 'calibration'): Promise<Ort> {
  try {
    return await import('onnxruntime-node');
  } catch (e) {
    throw new MissingPackageError('onnxruntime-node', neededFor, 'npm install onnxruntime-node@1.30.0', e);
  }
}

/**
 * @huggingface/transformers, imported on first use: only text calibration (`--q-arvd.prompts`)
 * needs it. It is an optional peer dependency; the range matches the onnxruntime-node version
 * qarvd pins, so npm installs one runtime for both.
 */
export async function importTransformers(neededFor = 'text calibration (--q-arvd.prompts)'): Promise<Transformers> {
  try {
    return await import('@huggingface/transformers');
  } catch (e) {
    throw new MissingPackageError('@huggingface/transformers', neededFor, 'npm install @huggingface/transformers@~4.3.1', e);
  }
}
