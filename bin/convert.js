#!/usr/bin/env node
// The `convert` (alias `qarvd`) command. It runs the compiled JavaScript in dist/, which the
// package ships (`npm pack` builds it); in a checkout `npm run build` does (npm test, npm run
// demo and npm run bench run it first); no tsx at run time.
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write(`convert: error: ${main.pathname} is missing: in a checkout of qarvd run \`npm run build\`\n`);
  process.exit(1);
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv.slice(2));
// Whatever still keeps the event loop alive now (timers a calibration module left running
// after it timed out) must not keep a finished conversion from exiting.
setTimeout(() => process.exit(), 1000).unref();
