/**
 * qarvd as a library: `import { quantize, loadModel, saveModel, PassManager, definePass,
 * definePlugin } from 'qarvd'`. Everything here is also what the `convert` CLI uses; the
 * heavy runtimes (onnxruntime-node, @huggingface/transformers) are imported only when a
 * calibration or text calibration actually runs.
 * @packageDocumentation
 */

// One call: what `convert` does for a model file.
export { quantize, type QuantizeOptions, type QuantizeResult } from './api/quantize.ts';
export { convert, convertFile, type ConvertFileOptions, type ConvertOptions, type ConvertResult, type PassSpec } from './api/convert.ts';
export { ConvertError } from './api/errors.ts';
export { createRegistry } from './api/registry.ts';

// Models: the IR and its ONNX file format.
export { loadModel, saveModel, type SaveOptions, type SaveResult } from './graph/serde/io.ts';
export { ModelFileError } from './graph/serde/errors.ts';
export { Graph, Model, Node, Tensor, Value, DataType, type DataTypeId, type Attribute, type AttributeValue } from './graph/ir/index.ts';
export { assertValid, verifyModel, VerifyError, type VerifyIssue, type VerifyIssueKind } from './graph/verify.ts';

// Passes, pipelines and plugins.
export {
  definePass,
  resolveOptions,
  PassOptionError,
  type Pass,
  type AnyPass,
  type PassContext,
  type PassDefinition,
  type PassOption,
  type PassOptionType,
  type PassResult,
  type OptionValues,
} from './passes/pass.ts';
export { PassManager, PassFailure, InvalidInputError, type PassManagerOptions, type PassRecord, type PassStep, type PipelineResult } from './passes/manager.ts';
export { definePlugin, loadPluginModule, PluginError, type Plugin } from './passes/plugin.ts';
export { PassRegistry, UnknownPassError, type RegisteredPass } from './passes/registry.ts';
export { createLogger, silentLogger, type Logger, type LoggerOptions } from './passes/log.ts';

// Calibration modules (`calib`): the contract a rollout or feeds module is written against.
export { CalibrationError, type CalibrationContext, type CalibrationModule, type FeedSample, type FeedsContext, type RolloutRun, type RunFn } from './passes/calibration/module.ts';
export type { SeededRandom } from './kernels/random.ts';
export type { QuantReport } from './passes/quant/report.ts';

// Reports: what `convert diff` and `convert inspect` compute.
export { diffModels, type DiffOptions, type ModelDiff } from './report/diff.ts';
export { inspectModel, type InspectOptions, type InspectReport } from './report/inspect.ts';

export { MissingPackageError } from './runtime/missing-package.ts';
export { VERSION } from './version.ts';
