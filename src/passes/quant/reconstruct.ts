/**
 * Reconstruction of a planned layer's weights from calibration statistics (METHOD.md
 * "Reconstruction"): the frame-weighted objective `tr((Ŵ − W)ᵀ H (Ŵ − W))` with
 * `H = Σ_c α_c Σ_{x ∈ c} xᵀx` drives the rounding, and the mean output shift `μ·(Ŵ − W)` is
 * folded into the bias.
 *
 * 1. The branches' scales and zero points are kept (min/max or searched, chosen before);
 *    only the integers change. GPTQ runs over all K rows of the layer at once, each row with
 *    its branch's quantizer, so the error of an outlier row is absorbed by normal rows and
 *    the other way round. AdaRound (`reconstruct adaround`, kernels/adaround.ts) instead learns
 *    each weight's rounding up or down against the same objective, with the same quantizers.
 * 2. Bias correction (Nagel et al. 2019, empirical): `b' = b − μ·(Ŵ − W)`; a layer without a
 *    bias gets one.
 * 3. The layer's error per calibration row, `e = tr(ΔᵀHΔ)/Σα_c n_c` and, after bias
 *    correction, `e − ‖μΔ‖²` (the mean part is removed exactly), is recorded: it is what
 *    `dual-scale auto` compares between the split and the single quantizer.
 * 4. `damp auto`: GPTQ fitted to a few hundred correlated rollouts can lower the error on
 *    their activations while raising it on activations it has not seen (measured on
 *    tiny-arvd-l: the lower the damping, the lower the calibration error and the higher the
 *    final-video error on held-out prompts). So the damping is chosen per layer by two-fold
 *    cross-validation over the calibration samples: for each candidate (and round to nearest)
 *    fit on one fold's statistics and measure the error per row on the other fold's (bias
 *    corrected with the fitting fold's mean, exactly as it will be applied), both ways; the
 *    candidate with the lowest held-out error is refitted on all samples. That held-out
 *    error is also what `dual-scale auto` compares.
 */
import { type ActivationMoments, type ActivationObjective, asymmetricError, asymmetricTarget, correctionScale, crossGram, quantizedGram } from '../../kernels/activation-objective.ts';
import { adaround, type AdaroundOptions } from '../../kernels/adaround.ts';
import { dampingsFrom, DEFAULT_GPTQ_DAMP, type GptqFactor, gptqFactor, gptqOnFactor, withDampingRetry, type GptqOptions, type GptqResult, quadraticError, roundToNearest, type RowQuantizers } from '../../kernels/gptq.ts';
import { newQuantArray } from '../../kernels/quantize.ts';
import type { MatMul64 } from '../../kernels/matmul.ts';
import type { ReconStats } from '../calibration/gram.ts';
import type { Branch, LayerPlan, LayerReconstruction } from './plan.ts';

/** How layers are reconstructed. */
export interface ReconstructOptions {
  /** `gptq`: GPTQ error feedback; `adaround`: learnt rounding; `none`: round to nearest (statistics still give bias correction and the error). */
  method: 'gptq' | 'adaround' | 'none';
  gptq: GptqOptions;
  /**
   * Damping fractions to choose from per layer by two-fold cross-validation (`damp auto`;
   * round to nearest is always a candidate); without folds (one calibration sample) or
   * without candidates, `gptq.damp` is used.
   */
  dampCandidates?: readonly number[];
  /** AdaRound's options (`rows` is set per layer from the statistics). */
  adaround?: AdaroundOptions;
  biasCorrection: boolean;
  /**
   * What the weights are fitted to with quantized activations (kernels/activation-objective.ts):
   * `fp32` (default) `tr(ΔᵀHΔ)` of the float inputs; `quantized` `tr(ΔᵀH̃Δ)` of the quantized
   * inputs; `asymmetric` `‖Q(X)Ŵ − XW‖²`. Needs the layer's activation moments; without
   * them (weight-only) every objective is `fp32`.
   */
  objective?: ActivationObjective;
}

/** The candidates of `damp auto`, strongest first (a tie keeps the stronger damping). */
export const DAMP_CANDIDATES: readonly number[] = [1, 0.1, 0.01];

/**
 * Row quantizers of a plan: one group per branch (per-output-channel scales), or per block of
 * a branch's rows (blocked scales; a split layer's outlier rows form their own blocks).
 */
export function rowQuantizersOf(plan: LayerPlan): RowQuantizers {
  const { K, N } = plan.layer;
  const G = plan.branches.reduce((s, br) => s + br.wScales.length / N, 0);
  const group = new Int32Array(K);
  const scales = new Float32Array(G * N);
  const zeroPoints = new Int32Array(G * N);
  let first = 0;
  for (const br of plan.branches) {
    const B = br.blockSize ?? br.K;
    for (let i = 0; i < br.K; i++) group[br.indices ? br.indices[i]! : i] = first + Math.floor(i / B);
    scales.set(br.wScales, first * N);
    zeroPoints.set(br.wZeroPoints, first * N);
    first += br.wScales.length / N;
  }
  const types = new Set(plan.branches.map((b) => b.wType));
  if (types.size !== 1) throw new Error(`internal: layer ${plan.layer.name} mixes weight types ${[...types].join(', ')}`);
  return { group, scales, zeroPoints, type: plan.branches[0]!.wType };
}

/**
 * One set of statistics (all samples, or a fold) seen through the activation objective: the
 * Hessian GPTQ runs on, the weights it quantizes, and the error it minimises.
 */
export interface LayerObjective {
  stats: ReconStats;
  /** The objective's Hessian: H (`fp32`) or H̃ of the quantized inputs. */
  h: Float64Array;
  /**
   * What GPTQ quantizes at damping fraction `damp`: W, or the asymmetric target W*_λ, built at
   * the first of GPTQ's dampings from `damp` ({@link dampingsFrom}) at which H̃ factors (GPTQ
   * raises its own damping the same way); `damp` is the one used.
   */
  target(damp: number): { weights: Float32Array; damp: number };
  /** The objective's output error of the weights `deq`, summed over the rows. */
  error(deq: Float32Array): number;
  /** The mean of that output error over the rows (1×N): what bias correction removes. */
  meanError(deq: Float32Array): Float64Array;
}

/**
 * The objective `kind` on `stats` for the layer weight `w` (`[K, N]`). `moments` (the layer
 * form's activation-quantizer error moments per row) are needed by `quantized` and
 * `asymmetric`; without them the objective is `fp32`. `shift` (`E[Q(x) − x]`) enters the
 * mean error of those two.
 */
export function layerObjective(stats: ReconStats, w: Float32Array, K: number, N: number, kind: ActivationObjective = 'fp32', moments?: ActivationMoments, shift?: Float64Array, matmul?: MatMul64, t = 1): LayerObjective {
  if (kind === 'fp32' || !moments) {
    return { stats, h: stats.h, target: (damp) => ({ weights: w, damp }), error: (deq) => quadraticError(deq, w, stats.h, K, N, matmul), meanError: (deq) => meanShift(stats.mean, deq, w, K, N) };
  }
  const h = quantizedGram(stats.h, stats.weight, moments, t);
  if (kind === 'quantized') {
    // The mean of Q(x)·Δ is (μ + ē)·Δ.
    const mean = shift ? stats.mean.map((v, k) => v + shift[k]!) : stats.mean;
    return { stats, h, target: (damp) => ({ weights: w, damp }), error: (deq) => quadraticError(deq, w, h, K, N, matmul), meanError: (deq) => meanShift(mean, deq, w, K, N) };
  }
  const c = crossGram(stats.h, stats.weight, moments, t);
  const targets = new Map<number, { weights: Float32Array; damp: number }>();
  return {
    stats,
    h,
    target: (damp) => {
      let t = targets.get(damp);
      if (!t) targets.set(damp, (t = dampedAsymmetricTarget(w, h, c, K, N, damp, matmul)));
      return t;
    },
    error: (deq) => asymmetricError(deq, w, stats.h, t * stats.weight, moments, K, N, matmul),
    // The mean of xΔ + eŴ is μΔ + ēŴ.
    meanError: (deq) => {
      const m = meanShift(stats.mean, deq, w, K, N);
      if (shift) {
        const e = throughWeight(shift, deq, K, N);
        for (let n = 0; n < N; n++) m[n] += e[n]!;
      }
      return m;
    },
  };
}

/**
 * Reconstructs the weights of `plan` (a new plan; the given one is not changed) and, with
 * bias correction, sets its bias shift.
 * @param w the layer's float weight `[K, N]` (alpha folded in)
 * @param activationShift `E[Q(x) − x]` of the plan's form (bias correction with quantized activations)
 * @param moments the plan's form's activation error moments (`quantized`/`asymmetric` objectives)
 */
export function reconstructPlan(plan: LayerPlan, w: Float32Array, stats: ReconStats, options: ReconstructOptions, activationShift?: Float64Array, moments?: ActivationMoments): LayerPlan {
  return reconstructPlans([{ plan, activationShift, moments }], w, stats, options)[0]!;
}

/** One form of a layer (its plan, and that form's activation statistics) for {@link reconstructPlans}. */
export interface LayerForm {
  plan: LayerPlan;
  activationShift?: Float64Array;
  moments?: ActivationMoments;
}

/**
 * {@link reconstructPlan} of several forms of one layer (`dual-scale auto`'s split and single
 * forms), each exactly as alone. Where the forms' objectives share H (the `fp32` objective)
 * they are run side by side, so that each Cholesky factorisation of H (or of a fold's H) at a
 * damping serves every form: the K³/6 part of GPTQ, which dominates on wide inputs (a
 * Wan2.1-sized `ffn.2`), is paid once per damping instead of once per form.
 */
export function reconstructPlans(forms: readonly LayerForm[], w: Float32Array, stats: ReconStats, options: ReconstructOptions): LayerPlan[] {
  // Other objectives build an H̃ per form (a K×K matrix each): one form at a time keeps one alive.
  if (forms.length > 1 && forms.some((f) => kindOf(f, options) !== 'fp32')) return forms.map((f) => reconstructPlans([f], w, stats, options)[0]!);
  const factors = new FactorCache(options.gptq);
  const prepared = forms.map((f) => prepareForm(f, w, stats, options));
  const choices = options.method === 'gptq' && options.dampCandidates?.length ? chooseDampings(prepared, options, factors) : prepared.map(() => undefined);
  return prepared.map((p, i) => finishForm(p, choices[i], stats, options, factors));
}

function kindOf(form: LayerForm, options: ReconstructOptions): ActivationObjective {
  return form.moments ? options.objective ?? 'fp32' : 'fp32';
}

/** A form's objective, quantizers and round-to-nearest result, and its folds as `damp auto` sees them. */
interface PreparedForm {
  form: LayerForm;
  w: Float32Array;
  kind: ActivationObjective;
  /** The reservoir's correction scale of H̃ (1 for `fp32`). */
  t: number;
  objective: LayerObjective;
  quantizers: RowQuantizers;
  rtn: GptqResult;
  /** The folds' objectives, for `damp auto`. */
  folds?: [LayerObjective, LayerObjective];
}

/** What {@link chooseDampings} reads of a form. */
type DampingInput = Pick<PreparedForm, 'folds' | 'quantizers'> & { rtn: Pick<GptqResult, 'deq'> };

function prepareForm(form: LayerForm, w: Float32Array, stats: ReconStats, options: ReconstructOptions): PreparedForm {
  const { plan, activationShift, moments } = form;
  const { K, N } = plan.layer;
  if (stats.K !== K) throw new Error(`internal: layer ${plan.layer.name} has K = ${K} but its statistics have ${stats.K} channels`);
  const matmul = options.gptq.matmul;
  const kind = kindOf(form, options);
  // The reservoir's correction of H, shrunk where the whole or a fold would not be positive definite with the least damping tried,
  // raised as GPTQ raises it where H cannot be factored at all with that damping (else damp 0 on a singular H would size no correction).
  const leastDamp = Math.min(options.gptq.damp ?? DEFAULT_GPTQ_DAMP, ...(options.dampCandidates ?? []));
  const t = kind === 'fp32' ? 1 : Math.min(...[stats, ...(stats.folds ?? [])].map((s) => correctionAtLeastDamping(s, moments!, leastDamp, matmul)));
  const objective = layerObjective(stats, w, K, N, kind, moments, activationShift, matmul, t);
  const quantizers = rowQuantizersOf(plan);
  const rtn = roundToNearest(w, K, N, quantizers);
  const prepared: PreparedForm = { form, w, kind, t, objective, quantizers, rtn };
  // The folds' objectives only for damp auto (the other objectives' are K×K matrices each).
  if (stats.folds && options.method === 'gptq' && options.dampCandidates?.length) {
    prepared.folds = stats.folds.map((f) => layerObjective(f, w, K, N, kind, moments, activationShift, matmul, t)) as [LayerObjective, LayerObjective];
  }
  return prepared;
}

function finishForm(p: PreparedForm, crossValidated: DampingChoice | undefined, stats: ReconStats, options: ReconstructOptions, factors: FactorCache): LayerPlan {
  const { form, w, kind, t, objective, quantizers, rtn } = p;
  const { plan, activationShift } = form;
  const { K, N } = plan.layer;
  const damp = crossValidated ? crossValidated.best : options.method === 'gptq' ? options.gptq.damp ?? DEFAULT_GPTQ_DAMP : 'rtn';
  const learnt = options.method === 'adaround' ? adaround(objective.target(options.gptq.damp ?? DEFAULT_GPTQ_DAMP).weights, objective.h, K, N, quantizers, { ...options.adaround, rows: stats.weight > 0 ? stats.weight : 1 }) : undefined;
  const perRow = stats.weight > 0 ? 1 / stats.weight : 0;
  const eRtn = objective.error(rtn.deq) * perRow;
  // AdaRound minimises the error plus its rounding regulariser, on a damped target: where the
  // learnt rounding ends above round to nearest's error (seen on 8-bit layers, whose
  // rounding error is already small), the layer keeps round to nearest.
  const eLearnt = learnt ? objective.error(learnt.deq) * perRow : undefined;
  const learntKept = learnt && eLearnt! <= eRtn ? learnt : undefined;
  const result = learnt ? learntKept ?? rtn : damp === 'rtn' ? rtn : gptqOnTarget(objective, N, quantizers, options, damp, factors);
  const shift = meanShift(stats.mean, result.deq, w, K, N);
  const eFinal = result === learnt ? eLearnt! : result !== rtn ? objective.error(result.deq) * perRow : eRtn;
  const shiftNorm2 = shift.reduce((s, v) => s + v * v, 0);
  const meanNorm2 = kind === 'fp32' ? shiftNorm2 : objective.meanError(result.deq).reduce((s, v) => s + v * v, 0);
  // With quantized activations the mean output is E[Q(x)]·Ŵ: the activation quantizer's mean error goes through Ŵ.
  const actShift = activationShift && options.biasCorrection ? throughWeight(activationShift, result.deq, K, N) : undefined;
  if (actShift) for (let n = 0; n < N; n++) shift[n] += actShift[n]!;
  const branches: Branch[] = plan.branches.map((br) => ({ ...br, wq: takeIntegers(result.q, br, K, N) }));
  const reconstruction: LayerReconstruction = {
    method: options.method,
    error: { rtn: eRtn, final: eFinal },
    errorCorrected: options.biasCorrection ? Math.max(0, eFinal - meanNorm2) : eFinal,
    meanShift: Math.sqrt(shiftNorm2),
    ...(actShift ? { activationShift: Math.sqrt(actShift.reduce((s, v) => s + v * v, 0)) } : {}),
    dead: result.dead,
    ...(options.method === 'gptq' ? { damp: result.damp ?? damp } : {}),
    ...(result.damp !== undefined && result.damp !== damp ? { dampRequested: damp as number } : {}),
    ...(crossValidated ? { heldOut: crossValidated.errors } : {}),
    ...(learnt ? { flipped: learntKept ? learnt.flipped : 0 } : {}),
    ...(learnt && !learntKept ? { keptRoundToNearest: true as const } : {}),
    ...(kind !== 'fp32' ? { objective: kind, ...(t < 1 ? { correctionScale: t } : {}) } : {}),
  };
  const out: LayerPlan = { ...plan, branches, reconstruction };
  if (options.biasCorrection) out.biasShift = Float32Array.from(shift, (v) => -v);
  return out;
}

/**
 * The last Cholesky factor made, kept for the next GPTQ run on the same H at the same damping
 * (the other form of the layer). One at a time: a Wan2.1-sized `ffn.2`'s factor is 642 MB.
 */
class FactorCache {
  private h?: Float64Array;
  private damp?: number;
  private factor?: GptqFactor;

  constructor(private readonly options: GptqOptions) {}

  get(h: Float64Array, K: number, damp: number): GptqFactor {
    if (this.factor && this.h === h && this.damp === damp) return this.factor;
    // Released before the next is made: never two K×K factors alive.
    this.factor = this.h = this.damp = undefined;
    const factor = gptqFactor(h, K, { ...this.options, damp });
    Object.assign(this, { h, damp, factor });
    return factor;
  }
}

/** GPTQ on the objective's target at `damp`, starting from the damping the target was built at. */
function gptqOnTarget(objective: LayerObjective, N: number, quantizers: RowQuantizers, options: ReconstructOptions, damp: number, factors: FactorCache): GptqResult {
  const target = objective.target(damp);
  return gptqOnFactor(target.weights, N, quantizers, factors.get(objective.h, objective.stats.K, target.damp), options.gptq);
}

/**
 * {@link asymmetricTarget} at the first of GPTQ's dampings from `damp` at which H̃ factors: with
 * a small damping on a singular H̃ (inputs with few distinct rows) float32 sums leave it
 * indefinite, and the run ended there although GPTQ itself would have raised its damping.
 */
function dampedAsymmetricTarget(w: Float32Array, h: Float64Array, c: Float64Array, K: number, N: number, damp: number, matmul: MatMul64 | undefined): { weights: Float32Array; damp: number } {
  const { value, damp: used } = withDampingRetry(damp, (d) => asymmetricTarget(w, h, c, K, N, d, matmul));
  return { weights: value, damp: used };
}

/**
 * {@link correctionScale} at the first of GPTQ's dampings ({@link dampingsFrom}) at which H
 * itself can be factored; 0 if none. A scale of 0 at a damping where H factors is an answer
 * (the fp32 objective), not a reason to try a larger damping.
 */
function correctionAtLeastDamping(s: ReconStats, moments: ActivationMoments, leastDamp: number, matmul: MatMul64 | undefined): number {
  for (const d of dampingsFrom(leastDamp)) {
    const t = correctionScale(s.h, s.weight, moments, d, matmul);
    if (t !== undefined) return t;
  }
  return 0;
}

/**
 * The error `dual-scale auto` compares: the held-out error of the chosen candidate when
 * `damp auto` measured one (the in-sample error favours whichever form fits the samples more
 * closely), else the in-sample error after bias correction. Both are under the layer's
 * activation objective.
 */
export function comparableError(r: LayerReconstruction): number {
  // The candidate's own score: where the refit raised the damping (H did not factor), the one chosen.
  return r.heldOut ? r.heldOut[String(r.dampRequested ?? r.damp)]! : r.errorCorrected;
}

/**
 * `dual-scale auto`'s decision between a layer's reconstructed split and single forms: the one
 * with the lower {@link comparableError}, its `splitChoice` recording both. Ties keep the single
 * quantizer: a split that does not help only costs a second MatMul.
 */
export function keepBetterForm(dual: LayerPlan, single: LayerPlan): LayerPlan {
  const choice = { single: comparableError(single.reconstruction!), dual: comparableError(dual.reconstruction!) };
  const kept = choice.dual < choice.single ? dual : single;
  kept.splitChoice = choice;
  return kept;
}

/** `damp auto`'s result: the held-out error per row of each candidate, and the best. */
export interface DampingChoice {
  errors: Record<string, number>;
  best: number | 'rtn';
}

/** Two-fold cross-validation of the damping candidates and round to nearest (see the module doc, rule 4), under the fp32 objective. */
export function chooseDamping(w: Float32Array, folds: readonly [ReconStats, ReconStats], quantizers: RowQuantizers, rtnDeq: Float32Array, options: ReconstructOptions): DampingChoice {
  const { K } = folds[0];
  const N = w.length / K;
  const objectives = folds.map((f) => layerObjective(f, w, K, N, 'fp32', undefined, undefined, options.gptq.matmul)) as [LayerObjective, LayerObjective];
  return chooseDampings([{ folds: objectives, quantizers, rtn: { deq: rtnDeq } }], options, new FactorCache(options.gptq))[0]!;
}

/**
 * {@link chooseDamping} for each form with folds, fitted and scored by its objective. The
 * candidates are the outer loop and the forms the inner one, so a fold's factor at a damping is
 * made once for all forms (FactorCache). Each form's sums are taken in the same order as alone.
 */
function chooseDampings(forms: readonly DampingInput[], options: ReconstructOptions, factors: FactorCache): (DampingChoice | undefined)[] {
  const pairs = [[0, 1], [1, 0]] as const;
  const weightOf = (folds: [LayerObjective, LayerObjective]) => folds[0].stats.weight + folds[1].stats.weight;
  const choices = forms.map(({ folds, rtn }) => {
    if (!folds) return undefined;
    let total = 0;
    for (const [tr, te] of pairs) total += heldOutErrorOf(rtn.deq, folds[tr], folds[te], options.biasCorrection) * folds[te].stats.weight;
    return { errors: { rtn: total / weightOf(folds) } as Record<string, number>, best: 'rtn' as number | 'rtn' };
  });
  // Per form, the two directions' weighted errors at the current candidate, summed in the same order as alone.
  const parts = forms.map(() => [0, 0]);
  for (const damp of options.dampCandidates!) {
    for (const [p, [tr, te]] of pairs.entries()) {
      forms.forEach(({ folds, quantizers, rtn }, i) => {
        if (!folds) return;
        const deq = gptqOnTarget(folds[tr], rtn.deq.length / folds[tr].stats.K, quantizers, options, damp, factors).deq;
        parts[i]![p] = heldOutErrorOf(deq, folds[tr], folds[te], options.biasCorrection) * folds[te].stats.weight;
      });
    }
    forms.forEach(({ folds }, i) => {
      if (!folds) return;
      const choice = choices[i]!;
      let total = 0;
      for (const part of parts[i]!) total += part;
      const e = total / weightOf(folds);
      choice.errors[String(damp)] = e;
      // Ties keep round to nearest, then the stronger damping: the choice that assumes less of the samples.
      if (e < choice.errors[String(choice.best)]!) choice.best = damp;
    });
  }
  return choices;
}

/**
 * The error per row on `test` of weights fitted on `train` under the fp32 objective:
 * `tr(ΔᵀH_tΔ)/n_t`, and with bias correction (the bias from `train`'s mean, `b = −μ_f·Δ`)
 * `E_t‖xΔ − μ_fΔ‖²`, which is `tr(ΔᵀH_tΔ)/n_t − 2(μ_tΔ)·(μ_fΔ) + ‖μ_fΔ‖²`.
 */
export function heldOutError(deq: Float32Array, w: Float32Array, train: ReconStats, test: ReconStats, K: number, N: number, biasCorrection: boolean, matmul?: MatMul64): number {
  return heldOutErrorOf(deq, layerObjective(train, w, K, N, 'fp32', undefined, undefined, matmul), layerObjective(test, w, K, N, 'fp32', undefined, undefined, matmul), biasCorrection);
}

/**
 * {@link heldOutError} under any objective: `error_t/n_t − 2·m_t·m_f + ‖m_f‖²`, `m` the
 * objective's mean output error on each fold (the bias is fitted on `train`).
 */
function heldOutErrorOf(deq: Float32Array, train: LayerObjective, test: LayerObjective, biasCorrection: boolean): number {
  let e = test.error(deq) / test.stats.weight;
  if (!biasCorrection) return e;
  const fit = train.meanError(deq);
  const seen = test.meanError(deq);
  for (let n = 0; n < fit.length; n++) e += fit[n]! * fit[n]! - 2 * seen[n]! * fit[n]!;
  return e;
}

/** `μ·(Ŵ − W)`: the mean output change over the calibration rows (1×N). */
export function meanShift(mean: Float64Array, deq: Float32Array, w: Float32Array, K: number, N: number): Float64Array {
  const out = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    const m = mean[k]!;
    if (m === 0) continue;
    const at = k * N;
    for (let n = 0; n < N; n++) out[n] += m * (deq[at + n]! - w[at + n]!);
  }
  return out;
}

/** `e·Ŵ` for a 1×K row `e` (1×N). */
function throughWeight(e: Float64Array, deq: Float32Array, K: number, N: number): Float64Array {
  const out = new Float64Array(N);
  for (let k = 0; k < K; k++) {
    const f = e[k]!;
    if (f === 0) continue;
    for (let n = 0; n < N; n++) out[n] += f * deq[k * N + n]!;
  }
  return out;
}

/** The branch's rows of the `[K, N]` integers, in the branch's storage type. */
function takeIntegers(q: Int32Array, br: Branch, K: number, N: number): Int8Array | Uint8Array {
  const out = newQuantArray(br.wType, br.K * N);
  if (!br.indices) {
    if (br.K !== K) throw new Error('internal: a whole-layer branch with fewer rows than the layer');
    out.set(q);
    return out;
  }
  br.indices.forEach((k, i) => out.set(q.subarray(k * N, (k + 1) * N), i * N));
  return out;
}
