/**
 * Reading a prompt list (`--q-arvd.prompts`), the text calibration source's input.
 *
 * Rules:
 * 1. The file is UTF-8 (a BOM is dropped). A UTF-16 file (what Windows calls "Unicode"), a
 *    binary file (a model given by mistake, which would make thousands of garbage prompts) and
 *    a legacy 8-bit encoding (its accented letters would be silently replaced) are refused,
 *    naming what was found.
 * 2. Text: one prompt a line, trimmed, blank lines skipped.
 * 3. A JSON array of strings (a `.json` file, or any file whose whole text is one) gives one
 *    prompt an item, line breaks kept; a text file whose one line is a JSON array of other
 *    things (`[1, 2]`) is that prompt.
 * 4. A `.jsonl` file (what Hugging Face `datasets` writes): each non-blank line a JSON string,
 *    or an object whose `text` (or `prompt`) field is the prompt.
 * 5. An empty list, an empty prompt and a JSON value that is not a prompt are refused, naming
 *    the line or item.
 */
import { isUtf8 } from 'node:buffer';
import { existsSync, readFileSync } from 'node:fs';
import { CalibrationError } from '../passes/calibration/module.ts';

/** The prompts of a list, and where each one is in the file ("line 3", "item 3 of the JSON array"). */
export interface PromptList {
  prompts: string[];
  where: string[];
}

/** Reads a prompt list (rules 1–5): its prompts. */
export function readPrompts(file: string): string[] {
  return readPromptList(file).prompts;
}

/** {@link readPrompts}, with where each prompt is. */
export function readPromptList(file: string): PromptList {
  if (!existsSync(file)) throw listError(file, 'file not found');
  const text = promptText(file, readFileSync(file));
  const list = /\.jsonl$/i.test(file) ? jsonLinesPrompts(file, text) : (jsonArrayPrompts(file, text) ?? textPrompts(text));
  if (list.prompts.length === 0) throw listError(file, 'has no prompts (one a line, or a JSON array of strings)');
  return list;
}

function listError(file: string, why: string): CalibrationError {
  return new CalibrationError(file, why, undefined, 'prompt list');
}

/** The text of the file (rule 1). */
function promptText(file: string, bytes: Buffer): string {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) throw listError(file, 'is UTF-16 text (its byte-order mark says so): save it as UTF-8');
  const nul = bytes.indexOf(0);
  if (nul >= 0) throw listError(file, `is not a text file (a NUL byte at offset ${nul}): give one prompt a line`);
  if (!isUtf8(bytes)) {
    // The first line that is not UTF-8 (a line holding U+FFFD itself is valid).
    let line = 1;
    for (let start = 0; start <= bytes.length && isUtf8(bytes.subarray(start, lineEnd(bytes, start))); start = lineEnd(bytes, start) + 1) line++;
    throw listError(file, `line ${line} is not UTF-8 (Latin-1 or another legacy encoding?): save the file as UTF-8`);
  }
  const text = bytes.toString('utf8');
  return text.startsWith('\uFEFF') ? text.slice(1) : text;
}

/** Where the line starting at `start` ends (its newline, or the end of the bytes). */
function lineEnd(bytes: Buffer, start: number): number {
  const end = bytes.indexOf(0x0a, start);
  return end < 0 ? bytes.length : end;
}

/** Rule 2. */
function textPrompts(text: string): PromptList {
  const list: PromptList = { prompts: [], where: [] };
  text.split(/\r?\n/).forEach((l, i) => {
    const p = l.trim();
    if (p === '') return;
    list.prompts.push(p);
    list.where.push(`line ${i + 1}`);
  });
  return list;
}

/** Rule 3; undefined when a file not named `.json` is not such an array (its lines are prompts). */
function jsonArrayPrompts(file: string, text: string): PromptList | undefined {
  const named = /\.json$/i.test(file);
  if (!named && !text.trimStart().startsWith('[')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    if (!named) return undefined;
    // What Hugging Face datasets' to_json() writes by default: one JSON value a line.
    const hint = isJsonLines(text) ? ' (one JSON value a line is JSON Lines: name the file .jsonl)' : '';
    throw listError(file, `is not valid JSON (${(e as Error).message})${hint}: give a JSON array of strings, or one prompt a line in a .txt file`);
  }
  if (!Array.isArray(value)) {
    if (!named) return undefined;
    throw listError(file, `holds a JSON ${typeof value === 'object' && value !== null ? 'object' : typeof value}, not an array of strings`);
  }
  if (!named && !value.every((p) => typeof p === 'string')) return undefined;
  const where = value.map((_, i) => `item ${i + 1} of the JSON array`);
  value.forEach((p, i) => {
    if (typeof p !== 'string') throw listError(file, `${where[i]} is ${p === null ? 'null' : typeof p}, not a string`);
    if (p.trim() === '') throw listError(file, `${where[i]} is an empty prompt`);
  });
  return { prompts: value as string[], where };
}

/** True when the text is more than one line and every non-blank line is a JSON value of its own. */
function isJsonLines(text: string): boolean {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  return lines.length > 1 && lines.every((l) => parsesAsJson(l));
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** Rule 4. */
function jsonLinesPrompts(file: string, text: string): PromptList {
  const list: PromptList = { prompts: [], where: [] };
  text.split(/\r?\n/).forEach((l, i) => {
    if (l.trim() === '') return;
    const where = `line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(l);
    } catch (e) {
      throw listError(file, `${where} is not valid JSON (${(e as Error).message})`);
    }
    const record = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    const p = typeof value === 'string' ? value : (record?.text ?? record?.prompt);
    if (typeof p !== 'string') throw listError(file, `${where} is neither a JSON string nor an object with a string "text" or "prompt" field`);
    if (p.trim() === '') throw listError(file, `${where} is an empty prompt`);
    list.prompts.push(p);
    list.where.push(where);
  });
  return list;
}
