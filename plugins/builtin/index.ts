/**
 * The built-in passes, registered exactly like a third-party plugin (`convert --plugin`).
 */
import constantsToInitializers from '../../src/passes/constants-to-initializers.ts';
import dce from '../../src/passes/dce.ts';
import { definePlugin } from '../../src/passes/plugin.ts';
import { VERSION } from '../../src/version.ts';

export default definePlugin({
  name: 'builtin',
  version: VERSION,
  passes: [constantsToInitializers, dce],
});
