/**
 * A conversion that ends the process before it finished says so. Two ways used to end it
 * without a word (found by a user trial with plugin passes): a pass whose promise never
 * settles (Node exits with code 13 once the event loop is empty, printing nothing), and a pass
 * that calls `process.exit(0)` (exit 0, no output written). Calibration modules are supervised
 * separately (supervise.ts); this covers everything else, plugin passes first.
 *
 * Rules, while {@link guardExit} is armed:
 * 1. Exit code 13 is Node's "unsettled top-level await": `bin/convert.js` awaits `run()`,
 *    so the run never finished; the exit code becomes 1 as for any failed conversion.
 * 2. An exception nobody caught (Node has printed its stack) is named as such.
 * 3. Any other exit is a `process.exit` from inside the run; the code becomes 1 when it was 0.
 * 4. Exits the CLI makes on purpose (Ctrl-C, the calibration watchdog) go through
 *    `prepareHardExit` and print their own line: they are left alone.
 * Each prints one line naming the pass that was running, and the temporary files are removed.
 */
import { onHardExit, removeTempFiles } from '../graph/serde/temp-files.ts';
import { runningPass } from '../passes/manager.ts';

/** Node's exit code for a top-level await that never settled. */
const UNSETTLED_TLA = 13;

/**
 * Watches the process's exit until the returned function is called (when the run returned).
 * @param write where the one-line error goes (the CLI's stderr)
 */
export function guardExit(write: (text: string) => void): () => void {
  let deliberate = false;
  const offHardExit = onHardExit(() => void (deliberate = true));
  let uncaught: unknown;
  // A monitor only looks: Node still reports the exception and exits as it would. One that an
  // 'uncaughtException' listener takes (calibration's supervision) does not end the process.
  const onUncaught = (e: unknown) => {
    if (process.listenerCount('uncaughtException') === 0) uncaught ??= e;
  };
  const onExit = (code: number) => {
    if (deliberate) return;
    const pass = runningPass();
    const who = pass ? `pass ${pass.name} (plugin ${pass.plugin})` : 'the conversion';
    // In an 'exit' listener the code argument of an unsettled await is 0: process.exitCode holds the 13.
    const what =
      process.exitCode === UNSETTLED_TLA
        ? 'never finished (its promise never settled, and nothing else was left to run)'
        : uncaught !== undefined
          ? `ended with an uncaught exception (${uncaught instanceof Error ? uncaught.message : String(uncaught)})`
          : `exited the process (process.exit(${code}))`;
    write(`convert: error: ${who} ${what} before the output was written; temporary files removed\n`);
    removeTempFiles();
    // Node ≥ 20 takes an exit code set in an 'exit' listener.
    if (process.exitCode === UNSETTLED_TLA || !code) process.exitCode = 1;
  };
  process.on('exit', onExit);
  process.on('uncaughtExceptionMonitor', onUncaught);
  return () => {
    process.off('exit', onExit);
    process.off('uncaughtExceptionMonitor', onUncaught);
    offHardExit();
  };
}
