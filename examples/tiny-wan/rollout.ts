/**
 * Calibration module for tiny-wan (`convert --q-arvd.calib examples/tiny-wan/rollout.ts`):
 * the sampler and prompt encoding of tiny-arvd (`../tiny-arvd/rollout-module.ts`) over this
 * folder's model and `meta.json`. Calibration: tiny-arvd's 16 calibration prompts; evaluation:
 * the other 16 prompts (`HELD_OUT_SET`), as tiny-arvd-m.
 */
import { createRolloutModule } from '../tiny-arvd/rollout-module.ts';
import { CALIBRATION_SET, HELD_OUT_SET } from '../tiny-arvd/prompts.ts';

/** tiny-wan's module: 16 calibration prompts, 16 disjoint evaluation prompts. */
export const tinyWan = createRolloutModule({
  folder: new URL('./', import.meta.url),
  calibrationPrompts: CALIBRATION_SET.map((p) => p.prompt),
  evaluationPrompts: HELD_OUT_SET,
});

/**
 * The module contract: `prompts` (calibration), `samples`, `evaluationPrompts` (with seeds,
 * disjoint from `prompts`) and `rollout(run, ctx)` (6 chunks × 8 Euler steps = 48 tagged calls).
 */
export const { prompts, samples, evaluationPrompts, rollout } = tinyWan;
