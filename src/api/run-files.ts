/**
 * The files one conversion reads and writes, checked against each other before any work is
 * done: no file the run writes (the output, a report, a calibration table, saved statistics)
 * may be the model it reads, one of that model's data files, a file a pass reads (a
 * calibration module, a table, a prompt list), or another file the run writes; and each one
 * must go to a folder that exists. Passes say which of their options name files in the
 * option's declaration (`PassOption.file`), so plugins get the same protection.
 */
import { accessSync, constants, existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { specialFileKind } from '../graph/serde/file-kind.ts';
import { tempSuffixBytes } from '../graph/serde/temp-files.ts';
import type { PassStep } from '../passes/manager.ts';
import { ConvertError } from './errors.ts';

/** A file of the run and what names it in messages (`--q-arvd.report`, `the input model`). */
export interface RunFile {
  label: string;
  path: string;
  /**
   * Refused before any pass when missing: a file a pass option names for reading (a side file
   * beside it may be optional). Otherwise a missing file is left to whatever reads it, which
   * may be a pass that never runs the read (found by a user trial: a misspelt calib path
   * accepted with exit 0 by a run that did not need it).
   */
  required?: boolean;
}

/** A file the run writes; `rewrites`: the label of a read file it may replace in place. */
export interface WrittenFile extends RunFile {
  rewrites?: string;
}

/** The files the steps' options name, with the files beside them that go with them. */
export function passFiles(steps: readonly PassStep[]): { reads: RunFile[]; writes: WrittenFile[] } {
  const reads: RunFile[] = [];
  const writes: WrittenFile[] = [];
  for (const step of steps) {
    for (const [key, decl] of Object.entries(step.pass.options)) {
      // A plugin's file option may have a path as its default: that file is written too.
      const value = step.options?.[key] ?? decl.default;
      if (!decl.file || typeof value !== 'string' || value === '') continue;
      const label = `--${step.pass.name}.${key}`;
      const rewrites = decl.file.rewrites ? `--${step.pass.name}.${decl.file.rewrites}` : undefined;
      const files: WrittenFile[] = [{ label, path: value, ...(rewrites ? { rewrites } : {}) }];
      for (const suffix of decl.file.sidecars ?? []) {
        files.push({ label: sidecarLabel(label, suffix), path: `${value}${suffix}`, ...(rewrites ? { rewrites: sidecarLabel(rewrites, suffix) } : {}) });
      }
      if (decl.file.access === 'read') reads.push(...files.map(({ label: l, path }, i) => ({ label: l, path, ...(i === 0 ? { required: true } : {}) })));
      else writes.push(...files);
    }
  }
  return { reads, writes };
}

/**
 * The files of a Hugging Face style folder a conversion reads besides the model (its config,
 * the tokenizer a prompt list is tokenized with), in `modelDir` and its parent: no side output
 * may replace them.
 */
export function modelFolderFiles(modelDir: string): RunFile[] {
  const out: RunFile[] = [];
  for (const dir of new Set([resolve(modelDir), dirname(resolve(modelDir))])) {
    for (const name of MODEL_FOLDER_FILES) {
      const path = join(dir, name);
      // Only regular files: the others are never read by a plain conversion (and a tokenizer
      // that is not one is refused where it is read, text-calibration.ts).
      if (existsSync(path) && statSync(path).isFile()) out.push({ label: `the model folder's ${name}`, path });
    }
  }
  return out;
}

const MODEL_FOLDER_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'preprocessor_config.json', 'vocab.json', 'merges.txt', 'tokenizer.model'];

function sidecarLabel(label: string, suffix: string): string {
  return `${label}'s ${suffix} file`;
}

/**
 * Refuses a run that misses a file a pass option names for reading, that would write over a
 * file it reads or write one file twice, or whose
 * written files go to a missing or unwritable folder, or to a folder path. Paths are compared
 * by real path (symbolic links, `..`) and, for existing files, by inode (hard links).
 * @throws ConvertError naming both files' options
 */
export function checkRunFiles(reads: readonly RunFile[], writes: readonly WrittenFile[]): void {
  for (const r of reads) {
    if (r.required && !existsSync(r.path)) throw new ConvertError(`${r.label} ${r.path}: file not found`);
    checkReadSource(r.path, `${r.label} ${r.path}`);
  }
  const seen: WrittenFile[] = [];
  for (const w of writes) {
    checkWriteTarget(w.path, `${w.label} ${w.path}`);
    for (const r of reads) {
      if (r.label !== w.rewrites && sameFile(w.path, r.path)) {
        throw new ConvertError(`${w.label} ${w.path}: is ${r.label} (${r.path}), which this run reads; write it to another path (what a run reads is never overwritten)`);
      }
    }
    const twice = seen.find((s) => sameFile(w.path, s.path));
    if (twice) throw new ConvertError(`${w.label} and ${twice.label} both name ${w.path}; one run cannot write both there`);
    seen.push(w);
  }
}

/**
 * Refuses a file a run reads when it exists but is not a regular file: a folder, or a FIFO
 * or device (/dev/zero), whose read would block or never end. A missing file is left to
 * whatever reads it, which names it.
 * @param what how the error names the path (`--config c.json`, `the input model m.onnx`)
 */
export function checkReadSource(path: string, what: string): void {
  if (!existsSync(path)) return;
  const st = statSync(path);
  if (st.isDirectory()) throw new ConvertError(`${what}: is a folder; give a file`);
  if (!st.isFile()) throw new ConvertError(`${what}: is ${specialFileKind(st)}, not a regular file`);
}

/** The longest file name (one path component) Linux, macOS and Windows file systems accept, in bytes. */
const NAME_MAX_BYTES = 255;

/**
 * Refuses a model output whose name leaves no room for the save's temporary suffix within 255
 * bytes: the run would fail only after the passes, with ENAMETOOLONG on a name the user never
 * gave. Only the model file: its data file is written only with external data (and fails in
 * plain words at the save when its longer name does not fit), side files take a shorter suffix.
 * @param what how the error names the path
 */
export function checkTempNameRoom(path: string, what: string): void {
  const bytes = Buffer.byteLength(basename(resolve(path)));
  const extra = tempSuffixBytes();
  if (bytes + extra > NAME_MAX_BYTES) {
    throw new ConvertError(`${what}: the file name is ${bytes} bytes; it is written first under a temporary name ${extra} bytes longer, over the ${NAME_MAX_BYTES}-byte limit of a file name: choose a name of at most ${NAME_MAX_BYTES - extra} bytes`);
  }
}

/**
 * Refuses a path a run would write (a temporary file renamed over it) when it is a folder or
 * an existing file that is not a regular one (a device such as /dev/null, a FIFO, a socket:
 * the rename would replace it with a regular file), or when its folder is missing, is not a
 * folder, or is not writable. Checked before any pass, which can take hours.
 * @param what how the error names the path (`-o out.onnx`, `option report r.json`)
 */
export function checkWriteTarget(path: string, what: string): void {
  const abs = resolve(path);
  if (existsSync(abs)) {
    const st = statSync(abs);
    if (st.isDirectory()) throw new ConvertError(`${what}: is a folder; give a file path`);
    if (!st.isFile()) throw new ConvertError(`${what}: is ${specialFileKind(st)}, not a regular file; outputs are written to a temporary file and renamed over the path, which would replace it: give a file path`);
  }
  const dir = dirname(abs);
  if (!existsSync(dir)) throw new ConvertError(`${what}: folder ${dirname(path)} does not exist`);
  if (!statSync(dir).isDirectory()) throw new ConvertError(`${what}: ${dirname(path)} is not a folder`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new ConvertError(`${what}: folder ${dirname(path)} is not writable`);
  }
}

/** Whether two paths name one file, existing or not (then by real folder and name). */
export function sameFile(a: string, b: string): boolean {
  const ka = fileKey(a);
  const kb = fileKey(b);
  if (ka === kb) return true;
  if (!existsSync(a) || !existsSync(b)) return false;
  const sa = statSync(a);
  const sb = statSync(b);
  return sa.dev === sb.dev && sa.ino === sb.ino;
}

function fileKey(path: string): string {
  const abs = resolve(path);
  if (existsSync(abs)) return realpathSync(abs);
  const dir = dirname(abs);
  return existsSync(dir) ? resolve(realpathSync(dir), basename(abs)) : abs;
}
