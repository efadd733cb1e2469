#!/usr/bin/env node
// The `convert` (alias `qarvd`) command: loads the TypeScript sources through tsx, so it
// works from a checkout (`npx convert`) and when the package is installed.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../src/cli/main.ts');
process.exitCode = await run(process.argv.slice(2));
// Whatever still keeps the event loop alive now (timers a calibration module left running
// after it timed out) must not keep a finished conversion from exiting.
setTimeout(() => process.exit(), 1000).unref();
