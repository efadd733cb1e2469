import type { PassStep } from './manager.ts';
import type { AnyPass } from './pass.ts';
import { type Plugin, validatePlugin } from './plugin.ts';
import { nearNames } from './near-names.ts';

/** A pass together with the plugin that provides it. */
export interface RegisteredPass {
  /** The pass. */
  readonly pass: AnyPass;
  /** The plugin it came from. */
  readonly plugin: Plugin;
}

/** An unknown pass name; the message lists the registered passes. */
export class UnknownPassError extends Error {
  constructor(
    /** The name asked for. */
    readonly passName: string,
    /** The registered pass names. */
    readonly known: readonly string[],
  ) {
    const close = nearNames(passName, known);
    const hint = close.length ? ` (did you mean ${close.join(' or ')}?)` : '';
    const list = known.length ? `known passes: ${known.join(', ')}` : 'no passes are registered';
    super(`unknown pass '${passName}'${hint}; ${list}`);
    this.name = 'UnknownPassError';
  }
}

/**
 * Every pass the tool can run, by name, from every registered plugin. Pass names are one
 * namespace: a second plugin offering a name already taken is refused, naming both plugins.
 */
export class PassRegistry {
  private readonly byName = new Map<string, RegisteredPass>();
  private readonly pluginList: Plugin[] = [];

  /**
   * Registers every pass of a plugin (all or nothing).
   * @param source where the plugin came from, for messages (defaults to its name)
   */
  register(plugin: Plugin, source?: string): void {
    validatePlugin(plugin, source ?? plugin?.name ?? '(unnamed)');
    const same = this.pluginList.find((p) => p.name === plugin.name);
    if (same) throw new Error(`plugin ${plugin.name} is already registered`);
    for (const pass of plugin.passes) {
      const prior = this.byName.get(pass.name);
      if (prior) {
        throw new Error(`pass ${pass.name} from plugin ${plugin.name} clashes with pass ${pass.name} from plugin ${prior.plugin.name}; pass names must be unique`);
      }
    }
    for (const pass of plugin.passes) this.byName.set(pass.name, { pass, plugin });
    this.pluginList.push(plugin);
  }

  /** A pipeline step for the named pass (throws {@link UnknownPassError} when there is none). */
  step(name: string, options: Record<string, unknown> = {}): PassStep {
    const { pass, plugin } = this.get(name);
    return { pass, plugin: plugin.name, options };
  }

  /** True when a pass of that name is registered. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The pass and its plugin; throws {@link UnknownPassError} listing what exists. */
  get(name: string): RegisteredPass {
    const r = this.byName.get(name);
    if (!r) throw new UnknownPassError(name, this.names());
    return r;
  }

  /** Every registered pass, in registration order. */
  list(): RegisteredPass[] {
    return [...this.byName.values()];
  }

  /** Names of every registered pass, in registration order. */
  names(): string[] {
    return [...this.byName.keys()];
  }

  /** The registered plugins, in registration order. */
  plugins(): Plugin[] {
    return [...this.pluginList];
  }
}
