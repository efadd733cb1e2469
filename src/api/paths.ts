/**
 * The checks on an output path that keep a conversion from destroying its input: the output
 * is never the input file, nor one of the data files the input reads, and its own data file
 * never lands on the input.
 */
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Model } from '../graph/ir/model.ts';
import { modelTensors } from '../graph/serde/io.ts';
import { ConvertError } from './errors.ts';
import { checkTempNameRoom, checkWriteTarget, sameFile } from './run-files.ts';

/** Refuses an output that is the input (same real path or same inode), a folder, a device or FIFO, or in a missing or unwritable folder. */
export function checkOutputPath(input: string, output: string): void {
  // Fail before the passes (calibration can take hours), not at the save.
  checkWriteTarget(output, output);
  checkTempNameRoom(output, output);
  if (sameFile(input, output)) throw new ConvertError(`${output}: is the input file; write the output to another path (the input is never overwritten)`);
}

/** Refuses an output that would replace a data file the model reads, or whose data file would replace the input. */
export function checkDataFiles(model: Model, input: string, output: string): void {
  for (const f of dataFilesOf(model)) {
    if (sameFile(f, output)) throw new ConvertError(`${output}: is the external data file of ${input}; write the output to another path`);
  }
  const outData = `${resolve(output)}.data`;
  if (existsSync(outData) && sameFile(outData, input)) {
    throw new ConvertError(`${output}: its data file ${basename(outData)} would replace the input ${input}; choose another output name`);
  }
}

/** The external data files a loaded model reads its weights from. */
export function dataFilesOf(model: Model): string[] {
  const files = new Set<string>();
  for (const t of modelTensors(model)) if (t.external) files.add(t.external.path);
  return [...files];
}
