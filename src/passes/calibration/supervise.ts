/**
 * Supervision of the user's calibration module. Its code runs in this process (onnxruntime
 * sessions and tensors stay where they are), so every way it can stop the conversion without
 * a word is watched while one of its calls runs, and turned into a one-line
 * {@link CalibrationError} naming the module, the sample and what happened:
 *
 * 1. too slow or hung on a timer: the per-sample timeout (`--<pass>.calib-timeout`);
 * 2. a promise that can never settle: Node would exit with code 13 and nothing on stderr once
 *    the event loop empties; `beforeExit` fires first (our timers are unref'd so they do not
 *    hide it) and fails the sample;
 * 3. `process.exit(…)`: replaced while the module runs by a function that fails the sample;
 * 4. an error thrown outside its promise chain (in a timer, an unawaited promise): caught by
 *    `uncaughtException` / `unhandledRejection` listeners, during a call and, through
 *    {@link LateThrows}, between and after calls until calibration has fully finished (a
 *    timer the module left may fire once its sample settled: without a listener Node prints
 *    a raw stack, or aborts inside onnxruntime, and leaves the augmented model behind);
 * 5. a synchronous loop: no timer can fire, so a watchdog thread ends the process
 *    (see watchdog.ts) after the timeout.
 *
 * While a call runs longer than {@link HEARTBEAT_MS}, a line every {@link HEARTBEAT_MS} says
 * it is alive (CI logs otherwise show nothing for minutes).
 */
import type { Logger } from '../log.ts';
import { CalibrationError } from './module.ts';
import { armWatchdog } from './watchdog.ts';

/** Seconds one sample may take by default: generous for a rollout, short of a stuck CI job. */
export const DEFAULT_CALIB_TIMEOUT_S = 600;
/** Interval of the "still running" lines. */
export const HEARTBEAT_MS = 10_000;

/** How module calls are supervised; set on the loaded calibration by the quantization pass. */
export interface Supervision {
  /** Seconds per sample (default {@link DEFAULT_CALIB_TIMEOUT_S}). */
  timeoutSeconds?: number;
  /** The option that sets it, as the timeout's message names it (default `--q-arvd.calib-timeout`). */
  timeoutOption?: string;
  /** Where the heartbeat lines go (none when absent). */
  log?: Logger;
  /** Interval of the heartbeat lines (default {@link HEARTBEAT_MS}; tests shorten it). */
  heartbeatMs?: number;
  /** The calibration-wide catcher of throws outside any call: each sample checks it first. */
  late?: LateThrows;
}

/**
 * Catches what the user's module throws outside any supervised call, from when calibration
 * starts until it has fully finished (its sessions released, its temporary model removed):
 * the first such error ends the calibration at the next sample, or when it returns, as a
 * {@link CalibrationError} naming the module. Errors during a call are that call's (its own
 * listeners name the sample); this one only remembers them too.
 */
export class LateThrows {
  private error: CalibrationError | undefined;
  private readonly onUncaught = (e: unknown) => {
    this.error ??= new CalibrationError(this.origin, `threw outside its promise chain, outside any sample: ${e instanceof Error ? e.message : String(e)}`, undefined, undefined, { cause: e });
  };

  /** @param origin the module, for the message (set again once it is loaded) */
  constructor(public origin: string) {
    process.on('uncaughtException', this.onUncaught);
    process.on('unhandledRejection', this.onUncaught);
  }

  /** Throws the first error caught, if any. */
  check(): void {
    if (this.error) throw this.error;
  }

  /**
   * Removes the listeners once calibration has fully finished. After a failure they stay
   * {@link LATE_GRACE_MS} longer, unref'd: the module's other timers may still fire while the
   * conversion reports the first error and ends (measured: the timer of the sample after the
   * failing one crashed one run in three with a raw stack), and that error is the one to show.
   */
  stop(failed: boolean): void {
    const off = () => {
      process.off('uncaughtException', this.onUncaught);
      process.off('unhandledRejection', this.onUncaught);
    };
    if (failed && lateGraceMs > 0) setTimeout(off, lateGraceMs).unref();
    else off();
  }
}

/** How long a failed calibration's module may still throw from its timers without a raw stack (see {@link holdLateThrowsAfterFailure}). */
export const LATE_GRACE_MS = 10_000;
let lateGraceMs = 0;

/**
 * For the CLI, whose process ends after reporting the failure: while its run lasts, a failed
 * calibration keeps catching the module's throws for {@link LATE_GRACE_MS} so that its other
 * timers do not print a raw stack over the error shown. A library caller keeps the default
 * (none): its process goes on, and its own errors must not be swallowed.
 * @returns a function that ends the setting (a hold already started runs its course)
 */
export function holdLateThrowsAfterFailure(): () => void {
  lateGraceMs = LATE_GRACE_MS;
  return () => {
    lateGraceMs = 0;
  };
}

/** Which call into the module this is, for messages. */
export interface ModuleCall {
  origin: string;
  /** The sample index; undefined while importing the module. */
  sample?: number;
  /** Samples in all, for the heartbeat. */
  samples?: number;
  /** What the module is doing: `the sample`, `importing it`. */
  what: string;
}

/**
 * Runs `fn` (a call into the user's module) under supervision; resolves or rejects as it
 * does, or rejects with a {@link CalibrationError} when the module hangs, exits or throws
 * outside its promise chain.
 */
export async function superviseModuleCall<T>(call: ModuleCall, supervision: Supervision | undefined, fn: () => Promise<T>): Promise<T> {
  const timeoutS = supervision?.timeoutSeconds ?? DEFAULT_CALIB_TIMEOUT_S;
  const option = supervision?.timeoutOption ?? '--q-arvd.calib-timeout';
  const error = (what: string, cause?: unknown) => new CalibrationError(call.origin, what, call.sample, undefined, cause === undefined ? undefined : { cause });
  let fail!: (e: Error) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => {}); // a failure after fn settled is moot, not an unhandled rejection
  const started = performance.now();

  const timeout = setTimeout(() => fail(error(`${call.what} did not finish within ${timeoutS} s; raise ${option} if a sample is that slow`)), timeoutS * 1000);
  const heartbeat = setInterval(() => {
    const at = call.sample === undefined ? '' : ` sample ${call.sample}${call.samples ? ` (of ${call.samples})` : ''}`;
    supervision?.log?.info(`calibration module ${call.origin}:${at} still running after ${Math.round((performance.now() - started) / 1000)} s (timeout ${timeoutS} s)`);
  }, supervision?.heartbeatMs ?? HEARTBEAT_MS);
  // Unref'd, so that an event loop with nothing else to do still reaches beforeExit.
  timeout.unref();
  heartbeat.unref();
  const onBeforeExit = () => fail(error(`${call.what} awaits a promise that can never settle (nothing else was left to run)`));
  const onUncaught = (e: unknown) => fail(error(`threw outside its promise chain: ${e instanceof Error ? e.message : String(e)}`, e));
  process.on('beforeExit', onBeforeExit);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const exit = process.exit;
  process.exit = ((code?: number | string | null) => {
    const e = error(`called process.exit(${code ?? ''}); a calibration module must return or throw`);
    fail(e);
    throw e;
  }) as typeof process.exit;
  const disarm = armWatchdog(timeoutS * 1000, error(`${call.what} did not finish within ${timeoutS} s and blocks the process (a synchronous loop?); raise ${option} if a sample is that slow`).message);
  try {
    return await Promise.race([(async () => fn())(), failed]);
  } finally {
    disarm();
    clearTimeout(timeout);
    clearInterval(heartbeat);
    process.off('beforeExit', onBeforeExit);
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    process.exit = exit;
  }
}
