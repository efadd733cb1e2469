/**
 * Calibration: the user's hook (a module exporting `feeds(ctx)` or `rollout(run, ctx)`),
 * augment → collect → compute in onnxruntime-node, S1 chunk sensitivity, the α-weighted
 * scale search, and the calibration table that lets a build calibrate once and quantize many
 * times. The `q-arvd` pass drives all of it through its options; these are the same steps
 * for API use.
 */
export { calibrate, type CalibrateOptions, type CalibrationResult } from './calibrate.ts';
export { collectStatistics, DEFAULT_RESERVOIR_ROWS, openCalibrationSession, type CollectedStats, type CollectProgress } from './collect.ts';
export {
  CalibrationError,
  checkCalibrationModule,
  loadCalibrationModule,
  type CalibrationContext,
  type CalibrationModule,
  type FeedSample,
  type LoadedCalibration,
  type RunFn,
} from './module.ts';
export { alphaFromSensitivity, measureSensitivity, readSensitivityFile, type SensitivityCurve } from './sensitivity.ts';
export { readCalibrationTable, scalesFromTable, type CalibrationTable, type TableBranch, type TableLayer } from './table.ts';
