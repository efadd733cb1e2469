/**
 * Fixed prompt sets for tiny-arvd: 16 calibration prompts and 8 disjoint evaluation prompts
 * (of the 32 possible), each balanced over shape, colour, speed and count. Evaluation seeds
 * are far from the small per-sample seeds a calibration run uses, so the two sets share
 * neither prompts nor noise.
 */
import { WORDS } from './prompt.ts';

/** A prompt and the seed of its sampling noise. */
export interface SeededPrompt {
  prompt: string;
  seed: number;
}

/** Every valid prompt, in encoding order (shape slowest, count fastest). */
export const ALL_PROMPTS: string[] = WORDS.shape.flatMap((shape) =>
  WORDS.colour.flatMap((colour) =>
    WORDS.speed.flatMap((speed) => WORDS.count.map((count) => `${shape} ${colour} ${speed} ${count}`)),
  ),
);

/** Calibration prompts: four per colour, two per shape/speed/count within each colour. */
export const CALIBRATION_SET: SeededPrompt[] = [
  'square red fast one',
  'square red slow two',
  'disc red slow two',
  'disc red fast one',
  'square green slow one',
  'square green fast one',
  'disc green slow two',
  'disc green fast two',
  'square blue slow one',
  'square blue fast two',
  'disc blue slow one',
  'disc blue fast two',
  'square yellow slow one',
  'square yellow fast two',
  'disc yellow slow one',
  'disc yellow fast two',
].map((prompt, i) => ({ prompt, seed: 1000 + i }));

/** Evaluation prompts: two per colour, four per shape/speed/count; none is a calibration prompt. */
export const EVALUATION_SET: SeededPrompt[] = [
  'square red slow one',
  'disc red fast two',
  'square green fast two',
  'disc green slow one',
  'square blue slow two',
  'disc blue fast one',
  'square yellow fast one',
  'disc yellow slow two',
].map((prompt, i) => ({ prompt, seed: 90001 + i }));

/**
 * All 16 prompts that are not calibration prompts: {@link EVALUATION_SET} first (same seeds),
 * then the other 8 (two per colour, four per shape/speed/count) with the next seeds. The
 * evaluation set of tiny-arvd-l, whose README and issue figures are over 16 held-out prompts.
 */
export const HELD_OUT_SET: SeededPrompt[] = [
  ...EVALUATION_SET,
  ...[
    'square red fast two',
    'square green slow two',
    'square blue fast one',
    'square yellow slow two',
    'disc red slow one',
    'disc green fast one',
    'disc blue slow two',
    'disc yellow fast one',
  ].map((prompt, i) => ({ prompt, seed: 90009 + i })),
];
