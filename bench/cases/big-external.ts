// A generated model with 1 GiB of weights in external data: load+save vs fs.copyFile, peak RSS.
import { bigModelRows } from '../big.ts';
import type { BenchCase } from '../lib.ts';

const bigExternal: BenchCase = {
  name: 'big-external',
  summary: 'load+save of a generated model with 1 GiB of weights in external data (16 × 64 MiB)',
  run: (ctx) => bigModelRows(ctx, { count: 16, mib: 64, how: 'external', runs: Math.min(ctx.runs, 5) }),
};

export default bigExternal;
