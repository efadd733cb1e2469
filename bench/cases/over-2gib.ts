// A generated model just over the 2 GiB protobuf limit, saved without asking for external data:
// the automatic switch, then load+save of it vs fs.copyFile, and the peak RSS of doing so.
import { bigModelRows } from '../big.ts';
import type { BenchCase } from '../lib.ts';

const over2GiB: BenchCase = {
  name: 'over-2gib',
  summary: 'a generated model over 2 GiB (33 × 64 MiB) saved with the automatic external-data switch, then load+save',
  run: (ctx) => bigModelRows(ctx, { count: 33, mib: 64, how: 'auto', runs: Math.min(ctx.runs, 3) }),
};

export default over2GiB;
