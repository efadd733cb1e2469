import builtin from '../../plugins/builtin/index.ts';
import qArvd from '../../plugins/q-arvd/index.ts';
import { loadPluginModule, type Plugin, PluginError } from '../passes/plugin.ts';
import { PassRegistry } from '../passes/registry.ts';

/** Names of CLI options: a pass of that name could not take `--<pass>.<key>` options. */
const RESERVED = new Set(['input', 'output', 'o', 'pass', 'config', 'external-data', 'verify', 'stats', 'plugin', 'quiet', 'q', 'verbose', 'v', 'debug', 'help', 'h', 'version', 'variant', 'force']);

/**
 * A registry with the bundled plugins (builtin, q-arvd) and the given plugins — module paths
 * (relative to the working folder) or plugin objects — registered in that order.
 * @throws PluginError naming the plugin that cannot be loaded or clashes
 */
export async function createRegistry(plugins: readonly (string | Plugin)[] = []): Promise<PassRegistry> {
  const registry = new PassRegistry();
  registry.register(builtin, 'builtin');
  registry.register(qArvd, 'q-arvd');
  for (const entry of plugins) {
    const path = typeof entry === 'string' ? entry : `(object ${String((entry as { name?: unknown })?.name)})`;
    const plugin = typeof entry === 'string' ? await loadPluginModule(entry) : entry;
    const reserved = plugin.passes.find((p) => RESERVED.has(p.name));
    if (reserved) throw new PluginError(`plugin ${path}: pass name ${reserved.name} is taken by a convert option (--${reserved.name}); rename the pass`);
    try {
      registry.register(plugin, path);
    } catch (e) {
      throw new PluginError(`plugin ${path}: ${(e as Error).message}`, { cause: e });
    }
  }
  return registry;
}
