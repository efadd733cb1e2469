import { renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Model } from '../../graph/ir/model.ts';
import { collectActivationRanges } from '../calibration/collect-ranges.ts';
import { type CalibrationModule, checkCalibrationModule, loadCalibrationModule, type LoadedCalibration } from '../calibration/module.ts';
import type { PassContext, PassResult } from '../pass.ts';
import { bitsLabel, type QuantConfig } from './config.ts';
import { findLinearLayers, type LayerSelection } from './linear-layers.ts';
import { quantizeLinearLayers } from './quantize-layers.ts';
import type { QuantReport } from './report.ts';
import { toQuantConfig, type SharedQuantValues } from './quant-options.ts';

/** Statistics both quantization passes declare. */
export const QUANT_STATISTICS = {
  layersQuantized: 'linear layers quantized',
  dualScale: 'layers split into outlier and normal branches (S2)',
  singleScale: 'layers with one quantizer',
  skipped: 'candidate layers left in float (reasons in the report)',
  outlierChannels: 'input channels in outlier branches, summed over layers',
  weightBytesBefore: 'initializer bytes before',
  weightBytesAfter: 'initializer bytes after',
} as const;

/**
 * Runs a quantization pass: loads the calibration module when activations are quantized,
 * collects activation ranges in onnxruntime-node, rewrites the layers, writes the report.
 * @param calibration a module object (API use); overrides the `calib` option
 */
export async function runQuantPass(model: Model, ctx: PassContext, options: SharedQuantValues, method: string, calibration?: CalibrationModule): Promise<PassResult> {
  const config: QuantConfig = toQuantConfig(options);
  const selection: LayerSelection = { include: options.include, exclude: options.exclude, minK: options.minK };
  let ranges;
  if (config.aBits !== null) {
    const calib = await resolveCalibration(options, calibration, config);
    const { layers } = findLinearLayers(model.graph, selection);
    if (layers.length > 0) {
      ctx.log.info(`calibrating ${layers.length} layers over ${calib.samples} sample(s) from ${calib.origin}`);
      ranges = await collectActivationRanges(model, layers, calib, (done, total) => ctx.log.progress(`calibration ${done}/${total} samples`));
    }
  }
  const report = quantizeLinearLayers(model, config, selection, ranges, method);
  if (options.report) writeJsonAtomic(options.report, report);
  const outlierChannels = report.layers.reduce((s, l) => s + (l.mode === 'dual' ? l.outliers : 0), 0);
  ctx.log.info(`${method} ${bitsLabel(config)} ${config.format}: ${report.totals.layers.dual} dual-scale, ${report.totals.layers.single} single-scale, ${report.totals.layers.skipped} skipped; weights ${report.totals.bytesBefore} → ${report.totals.bytesAfter} bytes`);
  return {
    modified: report.totals.layers.dual + report.totals.layers.single > 0,
    stats: {
      layersQuantized: report.totals.layers.dual + report.totals.layers.single,
      dualScale: report.totals.layers.dual,
      singleScale: report.totals.layers.single,
      skipped: report.totals.layers.skipped,
      outlierChannels,
      weightBytesBefore: report.totals.bytesBefore,
      weightBytesAfter: report.totals.bytesAfter,
    },
    report,
  };
}

async function resolveCalibration(options: SharedQuantValues, given: CalibrationModule | undefined, config: QuantConfig): Promise<LoadedCalibration> {
  if (given) return checkCalibrationModule(given);
  if (!options.calib) {
    throw new Error(`A${config.aBits} needs activation ranges: give a calibration module with calib (e.g. --q-arvd.calib ./calib.mjs), or use a-bits none for weight-only`);
  }
  return loadCalibrationModule(options.calib);
}

/** Writes JSON through a temporary file and a rename, so a reader never sees half a report. */
export function writeJsonAtomic(path: string, data: unknown): void {
  const full = resolve(path);
  const tmp = `${full}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(data, null, 2) + '\n');
  renameSync(tmp, full);
}

export type { QuantReport };
