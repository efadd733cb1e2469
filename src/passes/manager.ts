import type { Model } from '../graph/ir/model.ts';
import type { CalibrationModule } from './calibration/module.ts';
import type { SpillPlace } from '../graph/serde/spill-file.ts';
import { structuralIssues } from '../graph/structure.ts';
import { verifyModel, type VerifyIssue } from '../graph/verify.ts';
import { type Logger, silentLogger } from './log.ts';
import { type AnyPass, type PassContext, type PassResult, describe, resolveOptions } from './pass.ts';

/** One step of a pipeline: a pass, the plugin it comes from (for messages) and its raw options. */
export interface PassStep {
  /** The pass to run. */
  readonly pass: AnyPass;
  /** Name of the providing plugin; shown in failure messages. */
  readonly plugin?: string;
  /** Raw options (kebab-case keys, CLI strings or JSON values); resolved before anything runs. */
  readonly options?: Record<string, unknown>;
}

/** How a {@link PassManager} runs. */
export interface PassManagerOptions {
  /**
   * Verify the model before the first pass and after each pass. Default: on when running
   * under vitest (`process.env.VITEST`), off otherwise (the CLI turns it on with `--verify`).
   * Off, the cheap structural checks (`structuralIssues` in src/graph/structure.ts, not
   * exported) still run before the first pass and after the last.
   */
  verify?: boolean;
  /** Where passes report (default: silent). */
  log?: Logger;
  /** Let passes log more detail, and log each pass's time. */
  verbose?: boolean;
  /** Folder of the model file, handed to passes in their context. */
  modelDir?: string;
  /** A calibration module object handed to passes in their context (library API). */
  calibration?: CalibrationModule;
  /** The model is one of several graphs converted together (see {@link PassContext.partOfSet}). */
  partOfSet?: boolean;
  /** Where passes keep spill files (see {@link PassContext.spill}). */
  spill?: SpillPlace;
}

/** What one pass did. */
export interface PassRecord {
  /** The pass's name. */
  readonly name: string;
  /** The plugin that provided it. */
  readonly plugin: string;
  /** True when the pass changed the model. */
  readonly modified: boolean;
  /** Every declared statistic (0 when the pass did not report it). */
  readonly stats: Readonly<Record<string, number>>;
  /** What the pass returned as its report (a `QuantReport` for q-arvd and minmax). */
  readonly report?: unknown;
  /** Wall time of `run`, without verification. */
  readonly ms: number;
}

/** What a pipeline did. */
export interface PipelineResult {
  /** True when any pass changed the model. */
  readonly modified: boolean;
  /** What each pass did, in order. */
  readonly passes: readonly PassRecord[];
}

/**
 * A pass that threw, returned a malformed result, or left an invalid graph. The message is
 * `pass <name> (plugin <plugin>): <what>`, then `; after: <the passes that ran before>` when any did;
 * the original error is the `cause`.
 */
export class PassFailure extends Error {
  /**
   * The warnings logged before the failure (`[pass] message`), as the API's `ConvertResult`'s
   * `warnings` would have held them; set by `convert`/`convertFile`, empty elsewhere.
   */
  warnings: readonly string[] = [];

  constructor(
    /** The pass that failed. */
    readonly passName: string,
    /** The plugin that provided it. */
    readonly plugin: string,
    /** The passes that ran before it, in order. */
    readonly after: readonly string[],
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`pass ${passName} (plugin ${plugin}): ${detail}${after.length ? `; after: ${after.join(', ')}` : ''}`, options);
    this.name = 'PassFailure';
  }
}

/** The model handed to the pipeline was already invalid: no pass is to blame. */
export class InvalidInputError extends Error {
  constructor(
    /** What the verifier found. */
    readonly issues: readonly VerifyIssue[],
  ) {
    super(`the input model is invalid before any pass ran: ${summarizeIssues(issues)}`);
    this.name = 'InvalidInputError';
  }
}

/** The pass running now, in any pipeline of this process. */
let running: { readonly name: string; readonly plugin: string } | undefined;

/**
 * The pass whose `run` has been called and has not settled, if any: what the CLI names when
 * the process ends in the middle of a conversion (a plugin's promise that never settles, or
 * a `process.exit` inside a pass).
 */
export function runningPass(): { readonly name: string; readonly plugin: string } | undefined {
  return running;
}

/**
 * Runs passes in order on one model, like onnx_ir's PassManager: resolves every step's
 * options first (so a typo fails before any work), then runs each pass, checks its result
 * against its declaration, verifies the graph when asked, and collects statistics.
 */
export class PassManager {
  private readonly steps: readonly PassStep[];
  private readonly verify: boolean;
  private readonly log: Logger;
  private readonly verbose: boolean;
  private readonly modelDir: string | undefined;
  private readonly calibration: CalibrationModule | undefined;
  private readonly partOfSet: boolean;
  private readonly spill: SpillPlace | undefined;

  constructor(steps: readonly PassStep[], options: PassManagerOptions = {}) {
    this.steps = [...steps];
    this.verify = options.verify ?? Boolean(process.env.VITEST);
    this.log = options.log ?? silentLogger;
    this.verbose = options.verbose ?? false;
    this.modelDir = options.modelDir;
    this.calibration = options.calibration;
    this.partOfSet = options.partOfSet ?? false;
    this.spill = options.spill;
  }

  /** The names of the passes, in order. */
  get passNames(): string[] {
    return this.steps.map((s) => s.pass.name);
  }

  /** Runs every pass on `model` (in place). Throws {@link PassFailure} on the first failure. */
  async run(model: Model): Promise<PipelineResult> {
    const resolved = this.steps.map((s) => ({ step: s, plugin: s.plugin ?? '(none)', options: resolveOptions(s.pass, s.options ?? {}) }));
    // Without --verify the cheap structural checks still run, here and after the last pass.
    const inputIssues = this.verify ? verifyModel(model) : structuralIssues(model);
    if (inputIssues.length) throw new InvalidInputError(inputIssues);
    const records: PassRecord[] = [];
    const ran: string[] = [];
    for (const { step, plugin, options } of resolved) {
      const { pass } = step;
      const fail = (detail: string, cause?: unknown): never => {
        throw new PassFailure(pass.name, plugin, ran, detail, cause === undefined ? undefined : { cause });
      };
      const log = this.log.child(pass.name);
      const given = new Set(Object.entries(step.options ?? {}).filter(([, v]) => v !== undefined).map(([k]) => k));
      const ctx: PassContext = { log, verbose: this.verbose, modelDir: this.modelDir, calibration: this.calibration, given, ...(this.partOfSet ? { partOfSet: true } : {}), ...(this.spill ? { spill: this.spill } : {}) };
      const t0 = performance.now();
      let result: PassResult;
      running = { name: pass.name, plugin };
      try {
        result = await pass.run(model, ctx, options);
      } catch (e) {
        return fail(e instanceof Error ? e.message.split('\n').join(' ') : `threw ${describe(e)}`, e);
      } finally {
        running = undefined;
      }
      const ms = performance.now() - t0;
      const stats = checkResult(pass, result, fail);
      const last = ran.length === resolved.length - 1;
      if (this.verify || last) {
        const issues = this.verify ? verifyModel(model) : structuralIssues(model);
        if (issues.length) fail(`left an invalid graph: ${summarizeIssues(issues)}`);
      }
      records.push({ name: pass.name, plugin, modified: result.modified, stats, report: result.report, ms });
      if (this.verbose) log.info(`${result.modified ? 'modified the model' : 'no change'} in ${ms.toFixed(0)} ms`);
      ran.push(pass.name);
    }
    return { modified: records.some((r) => r.modified), passes: records };
  }
}

/** Checks a result against the pass's declaration; returns every declared statistic. */
function checkResult(pass: AnyPass, result: unknown, fail: (detail: string) => never): Record<string, number> {
  if (typeof result !== 'object' || result === null) return fail(`returned ${describe(result)} instead of { modified, stats }`);
  const r = result as Partial<PassResult>;
  if (typeof r.modified !== 'boolean') fail(`returned modified: ${describe(r.modified)}; expected true or false`);
  const reported = r.stats ?? {};
  if (typeof reported !== 'object') fail(`returned stats: ${describe(reported)}; expected an object`);
  const declared = Object.keys(pass.statistics);
  const stats: Record<string, number> = {};
  for (const k of declared) stats[k] = 0;
  for (const [k, v] of Object.entries(reported)) {
    if (!(k in pass.statistics)) {
      fail(`reported undeclared statistic '${k}'; declared: ${declared.length ? declared.join(', ') : '(none)'}`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(`reported statistic ${k} = ${describe(v)}; expected a finite number`);
    stats[k] = v;
  }
  return stats;
}

function summarizeIssues(issues: readonly VerifyIssue[], max = 3): string {
  const shown = issues.slice(0, max).map((i) => `[${i.kind}] ${i.message}`);
  const more = issues.length > max ? ` (and ${issues.length - max} more)` : '';
  return shown.join('; ') + more;
}
