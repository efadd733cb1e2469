/**
 * The `q-arvd` plugin: the Q-ARVD quantization pass and its MinMax baseline, loaded by the
 * `convert` CLI exactly as a third-party plugin would be.
 */
import minmax from '../../src/passes/minmax.ts';
import qArvd from '../../src/passes/q-arvd.ts';
import { definePlugin } from '../../src/passes/plugin.ts';
import { VERSION } from '../../src/version.ts';

export default definePlugin({
  name: 'q-arvd',
  version: VERSION,
  passes: [qArvd, minmax],
});
