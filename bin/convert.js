#!/usr/bin/env node
// The `convert` (alias `qarvd`) command: loads the TypeScript sources through tsx, so it
// works from a checkout (`npx convert`) and when the package is installed.
import { register } from 'tsx/esm/api';

register();
const { run } = await import('../src/cli/main.ts');
process.exitCode = await run(process.argv.slice(2));
