/**
 * `convert <input.onnx> -o <output.onnx> [--pass NAME]... [--NAME.KEY VALUE]...`: load, run
 * passes in order, save atomically. With no pass it round-trips the model.
 * `convert <folder> --variant <name> [--force] [--pass NAME]...`: a transformers.js model
 * folder; every fp32 graph in onnx/ gets the variant beside it (see `src/hf/folder.ts`).
 */
import type { CliCommand } from './command.ts';
import { CONVERT_SPEC } from './specs.ts';

export const convertCommand: CliCommand = {
  spec: CONVERT_SPEC,
  // The work (and the passes, model IO and hf code it needs) is imported only when a
  // conversion runs, so that `convert passes`, `diff` and `inspect` do not load it (convert-run.ts).
  run: async (args, io) => (await import('./convert-run.ts')).runConvert(args, io),
};
