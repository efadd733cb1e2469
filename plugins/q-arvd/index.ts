/**
 * The `q-arvd` plugin: the Q-ARVD quantization pass and its MinMax baseline, loaded by the
 * `convert` CLI exactly as a third-party plugin would be.
 */
import minmax from '../../src/passes/minmax.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import { definePlugin } from '../../src/passes/plugin.ts';
import pkg from '../../package.json' with { type: 'json' };

export default definePlugin({
  name: 'q-arvd',
  version: pkg.version,
  passes: [qArvd, minmax],
});
