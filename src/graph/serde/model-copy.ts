import { join } from 'node:path';
import type { Model } from '../ir/model.ts';
import { loadModel, saveModel } from './io.ts';
import { makeProcessTempDir, type TempDirPrefix } from './stale-temps.ts';
import { trackTemp } from './temp-files.ts';

/**
 * Runs `fn` on an independent copy of `model`, saved to and loaded back from a temporary
 * folder (external data when large, so the copy's weights stay lazy), which `fn` may also
 * write into; the folder is removed afterwards. Passes use it to try a rewrite without
 * touching the caller's model.
 * @param prefix names the temporary folder (`<prefix><pid>-XXXXXX` in the OS temp directory)
 */
export async function withModelCopy<T>(model: Model, prefix: TempDirPrefix, fn: (copy: Model, dir: string) => Promise<T>): Promise<T> {
  const dir = makeProcessTempDir(prefix);
  const remove = trackTemp(dir);
  try {
    saveModel(model, join(dir, 'model.onnx'), { externalData: 'auto' });
    return await fn(loadModel(join(dir, 'model.onnx')), dir);
  } finally {
    remove();
  }
}
