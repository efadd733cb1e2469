import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Model } from '../ir/model.ts';
import { loadModel, saveModel } from './io.ts';
import { trackTemp } from './temp-files.ts';

/**
 * Runs `fn` on an independent copy of `model`, saved to and loaded back from a temporary
 * folder (external data when large, so the copy's weights stay lazy), which `fn` may also
 * write into; the folder is removed afterwards. Passes use it to try a rewrite without
 * touching the caller's model.
 * @param prefix names the temporary folder (`<prefix>XXXXXX` in the OS temp directory)
 */
export async function withModelCopy<T>(model: Model, prefix: string, fn: (copy: Model, dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const remove = trackTemp(dir);
  try {
    saveModel(model, join(dir, 'model.onnx'), { externalData: 'auto' });
    return await fn(loadModel(join(dir, 'model.onnx')), dir);
  } finally {
    remove();
  }
}
