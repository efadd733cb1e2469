/**
 * The error sums of the scale search over a layer's outputs `[Md, N]` (one row per distinct
 * sample row; row i of the sample is row `of[i]`). Every sum is taken in the order the plain
 * definition takes it; the loops only run independent sums side by side, so that a float64
 * addition's latency is not paid once per value.
 */

/** Σ_i f_i ‖y_i − ref_i‖² / Σ_i f_i over the M sample rows (`weight` holds f_i). */
export function weightedRowError(y: Float32Array, ref: Float32Array, weight: Float64Array, M: number, N: number, of: Int32Array): number {
  // ‖y_i − ref_i‖² once per distinct row (a repeat has the same one), then the weighted sum
  // in row order. Four rows at a time: four independent sums, each in column order.
  const D = y.length / N;
  const e = new Float64Array(D);
  let d = 0;
  for (; d + 3 < D; d += 4) {
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let j = d * N, end = j + N; j < end; j++) {
      const d0 = y[j]! - ref[j]!;
      const d1 = y[j + N]! - ref[j + N]!;
      const d2 = y[j + 2 * N]! - ref[j + 2 * N]!;
      const d3 = y[j + 3 * N]! - ref[j + 3 * N]!;
      s0 += d0 * d0;
      s1 += d1 * d1;
      s2 += d2 * d2;
      s3 += d3 * d3;
    }
    e[d] = s0;
    e[d + 1] = s1;
    e[d + 2] = s2;
    e[d + 3] = s3;
  }
  for (; d < D; d++) {
    let s0 = 0;
    for (let j = d * N, end = j + N; j < end; j++) {
      const d0 = y[j]! - ref[j]!;
      s0 += d0 * d0;
    }
    e[d] = s0;
  }
  let total = 0;
  let wsum = 0;
  for (let i = 0; i < M; i++) {
    total += weight[i]! * e[of[i]!]!;
    wsum += weight[i]!;
  }
  return wsum > 0 ? total / wsum : 0;
}

/** A layer's outputs, per branch (the layer's output is their sum). */
export interface BranchOutputs {
  ref: Float32Array;
  before: Float32Array;
  after: Float32Array;
}

/**
 * Per chunk Σ_i r_i‖y_i − ref_i‖² / Σ_i r_i‖ref_i‖² over the chunk's sample rows, for the
 * outputs before and after the search in one pass: `represents` holds r_i, the number of the
 * chunk's rows sample row i stands for (the stratified sample's weights without S1's α), so each
 * figure estimates the relative error over every row of the chunk, as the search's objective
 * does (an unweighted sum let the few extreme rows outweigh the reservoir and could show the
 * search's choice as worse than min/max). The layer's output is its one branch's (a sum 0 + y
 * would only turn -0 into 0, which changes no squared error), or the float64 sum of its
 * branches', branch by branch (0 + y₀ + y₁ …), taken value by value as the sums are read.
 */
export function chunkRelativeErrors(outputs: BranchOutputs[], chunkIndex: Int32Array, represents: Float64Array, M: number, N: number, C: number, of: Int32Array): { before: number[]; after: number[] } {
  // sums[3c], sums[3c + 1], sums[3c + 2]: chunk c's Σ r_i‖before − ref‖², Σ r_i‖after − ref‖², Σ r_i‖ref‖².
  // The row helpers sum a row in locals and add it, times r_i, to the chunk's sums: no float is
  // boxed (a closure over the sums, or an object per row, made most of the search's garbage).
  const sums = new Float64Array(3 * C);
  const one = outputs.length === 1 ? outputs[0]! : undefined;
  const grouped = one ? undefined : summed(outputs);
  for (let i = 0; i < M; i++) {
    const at = of[i]! * N;
    if (one) rowSums1(one, at, N, sums, 3 * chunkIndex[i]!, represents[i]!);
    else rowSums2(grouped!, at, N, sums, 3 * chunkIndex[i]!, represents[i]!);
  }
  const rel = (k: number) => Array.from({ length: C }, (_, c) => (sums[3 * c + 2]! > 0 ? sums[3 * c + k]! / sums[3 * c + 2]! : 0));
  return { before: rel(0), after: rel(1) };
}

/** One branch: adds one output row, times `share`, to the chunk's three sums at `sums[s..s+2]`. */
function rowSums1(o: BranchOutputs, at: number, N: number, sums: Float64Array, s: number, share: number): void {
  const { ref, before, after } = o;
  let nb = 0;
  let na = 0;
  let dn = 0;
  for (let j = at, end = at + N; j < end; j++) {
    const r = ref[j]!;
    const db = before[j]! - r;
    const da = after[j]! - r;
    nb += db * db;
    na += da * da;
    dn += r * r;
  }
  sums[s]! += share * nb;
  sums[s + 1]! += share * na;
  sums[s + 2]! += share * dn;
}

/** The outputs of two or more branches, grouped for {@link rowSums2}: the first two, and any further ones. */
interface Summed {
  a: BranchOutputs;
  b: BranchOutputs;
  rest: BranchOutputs[];
}

function summed(outputs: BranchOutputs[]): Summed {
  return { a: outputs[0]!, b: outputs[1]!, rest: outputs.slice(2) };
}

/** Several branches: the layer's values are 0 + y₀ + y₁ (+ further branches), in float64; adds one row, times `share`, to `sums[s..s+2]`. */
function rowSums2(g: Summed, at: number, N: number, sums: Float64Array, s: number, share: number): void {
  const { a, b, rest } = g;
  let nb = 0;
  let na = 0;
  let dn = 0;
  for (let j = at, end = at + N; j < end; j++) {
    let r = 0 + a.ref[j]! + b.ref[j]!;
    let yb = 0 + a.before[j]! + b.before[j]!;
    let ya = 0 + a.after[j]! + b.after[j]!;
    for (let t = 0; t < rest.length; t++) {
      r += rest[t]!.ref[j]!;
      yb += rest[t]!.before[j]!;
      ya += rest[t]!.after[j]!;
    }
    const db = yb - r;
    const da = ya - r;
    nb += db * db;
    na += da * da;
    dn += r * r;
  }
  sums[s]! += share * nb;
  sums[s + 1]! += share * na;
  sums[s + 2]! += share * dn;
}

/** `out[r] = Σ_k a[r, k]·b[r, k]` of row-major `[R, K]` blocks, each sum in the order of k; four rows at a time. */
export function rowDots(a: Float32Array, b: Float32Array, R: number, K: number, out: Float64Array): void {
  let r = 0;
  for (; r + 3 < R; r += 4) {
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    for (let j = r * K, end = j + K; j < end; j++) {
      s0 += a[j]! * b[j]!;
      s1 += a[j + K]! * b[j + K]!;
      s2 += a[j + 2 * K]! * b[j + 2 * K]!;
      s3 += a[j + 3 * K]! * b[j + 3 * K]!;
    }
    out[r] = s0;
    out[r + 1] = s1;
    out[r + 2] = s2;
    out[r + 3] = s3;
  }
  for (; r < R; r++) {
    let s0 = 0;
    for (let j = r * K, end = j + K; j < end; j++) s0 += a[j]! * b[j]!;
    out[r] = s0;
  }
}
