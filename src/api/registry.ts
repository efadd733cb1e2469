import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import builtin from '../../plugins/builtin/index.ts';
import qArvd from '../../plugins/q-arvd/index.ts';
import { loadPluginModule, type Plugin, PluginError, validatePlugin } from '../passes/plugin.ts';
import { PassRegistry } from '../passes/registry.ts';

/** Names of CLI options: a pass of that name could not take `--<pass>.<key>` options. */
const RESERVED = new Set(['input', 'output', 'o', 'pass', 'config', 'external-data', 'verify', 'stats', 'plugin', 'quiet', 'q', 'verbose', 'v', 'debug', 'help', 'h', 'version', 'variant', 'force']);

/** The real path of a plugin module, or the path resolved when it does not exist (its load then says so). */
function realPath(path: string): string {
  try {
    return realpathSync(resolve(path));
  } catch {
    return resolve(path);
  }
}

/**
 * A registry with the bundled plugins (builtin, q-arvd) and the given plugins — module paths
 * (relative to the working folder) or plugin objects — registered in that order.
 * @throws PluginError naming the plugin that cannot be loaded or clashes
 */
export async function createRegistry(plugins: readonly (string | Plugin)[] = []): Promise<PassRegistry> {
  const registry = new PassRegistry();
  registry.register(builtin, 'builtin');
  registry.register(qArvd, 'q-arvd');
  // The same module named twice (in a config file's plugins and by --plugin) is loaded once.
  const seen = new Set<unknown>();
  for (const entry of plugins) {
    const key = typeof entry === 'string' ? realPath(entry) : entry;
    if (seen.has(key)) continue;
    seen.add(key);
    const name = (entry as { name?: unknown } | null)?.name;
    const path = typeof entry === 'string' ? entry : typeof name === 'string' && name !== '' ? `(object ${name})` : '(a plugin object)';
    // An object is checked as a module's default export is (it threw a TypeError on a malformed one).
    const plugin = typeof entry === 'string' ? await loadPluginModule(entry) : validatePlugin(entry, path);
    const reserved = plugin.passes.find((p) => RESERVED.has(p.name));
    if (reserved) throw new PluginError(`plugin ${path}: pass name ${reserved.name} is taken by a convert option (--${reserved.name}); rename the pass`);
    try {
      registry.register(plugin, path);
    } catch (e) {
      // validatePlugin's errors already name the plugin.
      if (e instanceof PluginError) throw e;
      throw new PluginError(`plugin ${path}: ${(e as Error).message}`, { cause: e });
    }
  }
  return registry;
}
