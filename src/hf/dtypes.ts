/**
 * transformers.js dtypes and the file names it loads for them, and the rules that decide
 * whether `--variant <name>` may name what a run of passes produces.
 *
 * Rules:
 * 1. A dtype name maps to the exact suffix transformers.js (v4) appends to a graph's base
 *    name: `q8` → `<base>_quantized.onnx`, every other dtype `d` → `<base>_<d>.onnx` (`fp32`
 *    has none). The table holds every dtype transformers.js knows (its
 *    `DEFAULT_DTYPE_SUFFIX_MAPPING`, which dtypes.test.ts compares it with), also those no pass
 *    here produces: their files are variants, never fp32 base graphs.
 * 2. Any other name `n` gives `<base>_<n>.onnx`, which transformers.js loads with
 *    `{ model_file_name: '<base>_<n>', dtype: 'fp32' }`: it appends the dtype's suffix to
 *    model_file_name (fp32's is none), and without a dtype it takes config.json's
 *    `transformers.js_config.dtype` or else the device's default (q8 for wasm; an unknown
 *    dtype string gives the device's default too).
 * 2a. A name whose file is a dtype's file (`quantized` → `_quantized`, q8's; case ignored, as
 *    on case-insensitive file systems it is the same file) is refused naming the dtype: written
 *    under its own name it would bypass rule 4 and be loaded for `{ dtype: 'q8' }`.
 * 3. A name that is not a dtype but within edit distance 2 of one (a swap of neighbours counts 1) (1 for names of up to 3
 *    characters; case ignored) is taken for a typo and refused with "did you mean".
 * 4. A dtype is refused when the output does not have its meaning: `fp32` is the base itself;
 *    `fp16`, `q4f16`, `bnb4`, `q2`, `q2f16`, `q1`, `q1f16` are formats no pass here produces;
 *    `q8` needs 8-bit weights, `int8` signed and `uint8` unsigned ones; `q4` needs 4-bit
 *    weight-only.
 */
import { FolderError } from './errors.ts';
import { editDistance } from '../passes/near-names.ts';

/** The suffix transformers.js appends to a base file name, per dtype. */
export const DTYPE_SUFFIX: Readonly<Record<string, string>> = {
  fp32: '',
  fp16: '_fp16',
  q8: '_quantized',
  int8: '_int8',
  uint8: '_uint8',
  q4: '_q4',
  bnb4: '_bnb4',
  q4f16: '_q4f16',
  q2: '_q2',
  q2f16: '_q2f16',
  q1: '_q1',
  q1f16: '_q1f16',
};

/** The dtype names, in the order of transformers.js's `DATA_TYPES` (v4.3). */
export const DTYPES: readonly string[] = Object.keys(DTYPE_SUFFIX);

/** A `--variant` name resolved to the file suffix it writes. */
export interface VariantName {
  name: string;
  /** `_quantized`, `_q4`, … for a dtype; `_<name>` otherwise. */
  suffix: string;
  /** True when the name is a transformers.js dtype (loadable with `{ dtype: name }`). */
  isDtype: boolean;
}

/** What the passes of a run make of the weights, as far as dtype names care. */
export interface QuantMeaning {
  /** The quantizing pass (its options decide), or undefined when no pass quantizes. */
  pass?: string;
  wBits?: number;
  /** Activation bits; null for weight-only. */
  aBits?: number | null;
  /**
   * Symmetric weights or not; either way they are stored signed, as int8 / int4 (asymmetric
   * ones with int8 / int4 zero points; MatMulNBits' layout shifts both to its unsigned grid).
   */
  wSymmetric?: boolean;
}

/** An invalid or refused `--variant`; the message says why and what to do. */
export class VariantError extends FolderError {
  constructor(message: string) {
    super(message);
    this.name = 'VariantError';
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Resolves a `--variant` name (rules 1–3). Throws {@link VariantError} for a malformed name or
 * a likely typo of a dtype.
 */
export function resolveVariantName(name: string): VariantName {
  if (!NAME.test(name)) throw new VariantError(`--variant '${name}': ${nameProblem(name)} (it becomes part of a file name, <base>_<name>.onnx)`);
  if (Object.hasOwn(DTYPE_SUFFIX, name)) return { name, suffix: DTYPE_SUFFIX[name]!, isDtype: true };
  const near = nearDtypes(name);
  if (near.length) {
    throw new VariantError(
      `--variant '${name}' is not a transformers.js dtype; did you mean ${near.map((d) => `'${d}'`).join(' or ')}? ` +
        `(dtypes: ${DTYPES.join(', ')}; for a file loaded with model_file_name pick a name that is not this close to one)`,
    );
  }
  const sameFile = dtypeOfFile(name);
  if (sameFile) {
    throw new VariantError(
      `--variant '${name}' writes <base>_${name}.onnx, the file transformers.js loads for dtype '${sameFile}'; ` +
        `use --variant ${sameFile} (then the run must produce what '${sameFile}' means), or a name that is not a dtype's file`,
    );
  }
  return { name, suffix: `_${name}`, isDtype: false };
}

/** Why a name fails {@link NAME}: the message says what is wrong rather than listing the allowed characters only. */
function nameProblem(name: string): string {
  if (name === '') return 'is empty';
  const bad = [...new Set(name.replace(/[A-Za-z0-9._-]/g, ''))];
  if (bad.length) return `${bad.map((c) => `'${c}'`).join(', ')} ${bad.length === 1 ? 'is' : 'are'} not allowed: use letters, digits, '.', '_' or '-'`;
  // Only the first character is wrong: a leading '.' gives hidden or '..' names, and convert adds the '_' itself.
  const rest = name.replace(/^_+/, '');
  const suggestion = dtypeOfFile(rest) ?? rest;
  return `must start with a letter or digit${name.startsWith('_') && rest ? ` (convert adds the '_' itself: --variant ${suggestion})` : ''}`;
}

/** The dtype whose file `<base>_<name>.onnx` is (case ignored), if any. */
function dtypeOfFile(name: string): string | undefined {
  return DTYPES.find((d) => DTYPE_SUFFIX[d] === `_${name.toLowerCase()}`);
}

/** The dtypes a name is probably a typo of (rule 3): those at the smallest distance. */
export function nearDtypes(name: string): string[] {
  const lower = name.toLowerCase();
  const limit = name.length <= 3 ? 1 : 2;
  const near = DTYPES.map((d) => ({ d, dist: editDistance(lower, d) })).filter((x) => x.dist <= limit);
  const best = Math.min(...near.map((x) => x.dist));
  return near.filter((x) => x.dist === best).map((x) => x.d);
}

/**
 * Checks that a dtype name means what the run produces (rule 4); names that are not dtypes
 * always pass. Throws {@link VariantError} otherwise.
 */
export function checkVariantMeaning(v: VariantName, m: QuantMeaning): void {
  if (!v.isDtype) return;
  const what = m.pass ? `this ${m.pass} run has w-bits ${m.wBits}, a-bits ${m.aBits ?? 'none'}` : 'the passes given quantize nothing (no q-arvd or minmax pass)';
  const refuse = (meaning: string, fix: string): never => {
    throw new VariantError(`--variant ${v.name} means ${meaning}, but ${what}; ${m.pass || v.name.includes('f16') || v.name === 'bnb4' ? fix : 'add --pass q-arvd (or minmax), or use a name of your own'}`);
  };
  switch (v.name) {
    case 'fp32':
      throw new VariantError(`--variant fp32 is the base model itself (<base>.onnx), which convert never overwrites; pick another variant name`);
    case 'fp16':
    case 'q4f16':
    case 'bnb4':
      return refuse(
        v.name === 'fp16' ? 'float16 weights and activations' : v.name === 'q4f16' ? '4-bit weights with float16 activations' : 'bitsandbytes NF4 weights',
        `no pass here produces that format; use q8 or q4, or a name of your own (loaded with model_file_name)`,
      );
    case 'q2':
    case 'q2f16':
    case 'q1':
    case 'q1f16': {
      // Refused whatever the run does: weights are quantized to 8 or 4 bits only, so no run has this meaning.
      const bits = v.name[1];
      throw new VariantError(
        `--variant ${v.name} is a transformers.js dtype (${bits}-bit weights${v.name.endsWith('f16') ? ', float16 activations' : ''}) that convert does not produce; ` +
          `use q4 (4-bit weight-only) or q8, or a name of your own (loaded with model_file_name)`,
      );
    }
    case 'q8':
      if (m.wBits !== 8) refuse('8-bit quantized weights', 'quantize with w-bits 8, or use --variant q4 for 4-bit weight-only');
      return;
    case 'int8':
      if (m.wBits !== 8) refuse('int8 weights', 'quantize with w-bits 8');
      return;
    case 'uint8':
      // 8-bit weights are int8 (onnxruntime's fast u8×s8 kernels); docs/speed.md.
      throw new VariantError(`--variant uint8 means uint8 weights, but ${m.pass ?? 'the quantization pass'} stores 8-bit weights as int8 (reduce-range keeps them on a 7-bit grid for CPUs without VNNI); use --variant int8 or q8, or a name of your own`);
    case 'q4':
      if (m.wBits !== 4 || m.aBits !== null) refuse('4-bit weight-only quantization', `quantize with --${m.pass ?? 'q-arvd'}.w-bits 4 --${m.pass ?? 'q-arvd'}.a-bits none`);
      return;
  }
}
