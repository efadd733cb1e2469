/**
 * `quantize(input, output, { pass: 'q-arvd', wBits: 4, calib })`: the library's one call for
 * `convert <input> -o <output> --pass q-arvd --q-arvd.w-bits 4 --q-arvd.calib …`. It builds
 * the same pipeline step the CLI builds and runs it through {@link convertFile}, as the CLI does.
 */
import type { CalibrationModule } from '../passes/calibration/module.ts';
import type { Plugin } from '../passes/plugin.ts';
import type { QuantReport } from '../passes/quant/report.ts';
import { resolveOptions } from '../passes/pass.ts';
import { type ConvertFileOptions, type ConvertResult, convertFile } from './convert.ts';
import { ConvertError } from './errors.ts';
import { createRegistry } from './registry.ts';

/**
 * Options of {@link quantize}. Besides the ones listed, any option of the pass (see
 * `convert passes q-arvd`) may be given in camelCase (`smoothQuant: true`, `minK: 32`) or in
 * its CLI spelling (`'smooth-quant': true`).
 */
export interface QuantizeOptions extends ConvertFileOptions {
  /** The quantization pass: `q-arvd` (default) or the `minmax` baseline, or a plugin's pass. */
  pass?: string;
  /** Weight bits, per output channel (default 8). */
  wBits?: 4 | 8 | '4' | '8';
  /** Activation bits, static per tensor; `'none'` quantizes weights only (default 8). */
  aBits?: 6 | 8 | '6' | '8' | 'none';
  /**
   * Calibration for quantized activations: the path of a calibration module, or the module
   * object itself (`{ samples, feeds(ctx) }` or `{ prompts, rollout(run, ctx) }`).
   */
  calib?: string | CalibrationModule;
  /** Text models: a prompt list file (one a line), tokenized with the tokenizer beside the model. */
  prompts?: string;
  /** Plugins to register before the pass is looked up: module paths or plugin objects. */
  plugins?: readonly (string | Plugin)[];
  /** Any other option of the pass. */
  [option: string]: unknown;
}

/** What {@link quantize} did: {@link ConvertResult} and the quantization pass's report, typed. */
export interface QuantizeResult extends ConvertResult {
  /**
   * The pass's per-layer report (`passes[0].report`): a {@link QuantReport} for q-arvd and
   * minmax; a plugin's pass returns what it declares.
   */
  report: QuantReport | undefined;
}

/** Keys of {@link QuantizeOptions} that are not options of the pass. */
const OWN_KEYS = new Set(['pass', 'calib', 'plugins', 'externalData', 'verify', 'log', 'verbose', 'calibration']);

/**
 * Quantizes the model file `input` and writes it to `output` (atomically; never over the input).
 * @returns what the pass did (`passes[0].stats`, its `report`) and the files written
 * @throws ConvertError naming the pass or option when one is unknown or has the wrong type or choice (checked before the model is loaded)
 * @throws PassFailure naming the pass when quantization fails, or an option's value is out of its range (`smoothAlpha: 5`; checked by the pass); a calibration module's error names the module and sample
 * @example
 * ```ts
 * await quantize('model.onnx', 'model.w4.onnx', { wBits: 4, aBits: 'none' });
 * await quantize('model.onnx', 'model.q.onnx', { calib: './calib.mjs' });
 * ```
 */
export async function quantize(input: string, output: string, options: QuantizeOptions = {}): Promise<QuantizeResult> {
  const name = options.pass ?? 'q-arvd';
  const registry = await createRegistry(options.plugins ?? []);
  const raw: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (OWN_KEYS.has(key) || value === undefined) continue;
    raw[kebabCase(key)] = value;
  }
  const calibObject = typeof options.calib === 'object' && options.calib !== null ? options.calib : undefined;
  // A path beside `calibration` is refused by the pass (as for convert()); two objects meet only here.
  if (calibObject && options.calibration) throw new ConvertError('quantize: calib and calibration are both calibration module objects: give one of them');
  const calibration = calibObject ?? options.calibration;
  // Refused here, not left to the pass: the pass knows the object only as convert()'s
  // `calibration`, and named it so when the user had given `calib` (found by review).
  const beside = typeof options.calib === 'string' ? `calib ${options.calib}` : options.prompts !== undefined ? `prompts ${String(options.prompts)}` : undefined;
  if (calibration && beside) throw new ConvertError(`quantize: ${beside} and ${calibObject ? 'calib' : 'calibration'} (a calibration module object) are both given: give one of them`);
  if (typeof options.calib === 'string') raw.calib = options.calib;
  else if (options.calib !== undefined && options.calib !== null && typeof options.calib !== 'object') {
    throw new ConvertError(`quantize: calib must be a module path or a calibration module object, got ${typeof options.calib}`);
  }
  let step;
  try {
    step = registry.step(name, raw);
    resolveOptions(step.pass, step.options);
  } catch (e) {
    throw new ConvertError(`quantize: ${(e as Error).message}`, { cause: e });
  }
  const result = await convertFile(input, output, [step], { ...options, calibration });
  return { ...result, report: result.passes[0]?.report as QuantReport | undefined };
}

/** `wBits` → `w-bits` (kebab-case keys pass through unchanged). */
function kebabCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
