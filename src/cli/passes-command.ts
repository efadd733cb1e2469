/**
 * `convert passes [name]`: every registered pass (built-in and from `--plugin`), with its
 * summary, options (type, default, help) and statistics.
 */
import type { PassOption } from '../passes/pass.ts';
import type { RegisteredPass } from '../passes/registry.ts';
import { listFlag } from './args.ts';
import { wrap } from './help.ts';
import type { CliCommand } from './command.ts';
import { PASSES_SPEC } from './specs.ts';

export const passesCommand: CliCommand = {
  spec: PASSES_SPEC,
  async run(args, io) {
    // Imported here, not at the top, so that `diff` and `inspect` do not load every pass.
    const { createRegistry } = await import('../api/registry.ts');
    // A plugin-author's trial: `passes --config` was refused, so a config's plugins could not be listed.
    const configPlugins = typeof args.config === 'string' ? (await import('./pipeline.ts')).readConfig(args.config).plugins : [];
    const registry = await createRegistry([...configPlugins, ...listFlag(args.plugin, 'plugin')]);
    const name = args.name as string | undefined;
    const entries = name === undefined ? registry.list() : [registry.get(name)];
    io.out(entries.map(describePass).join('\n'));
    return 0;
  },
};

/** The text block `convert passes` prints for one pass. */
export function describePass({ pass, plugin }: RegisteredPass): string {
  const lines = [`${pass.name}  (plugin ${plugin.name} ${plugin.version})`, `  ${pass.summary}`];
  if (pass.description) lines.push(...wrap(pass.description, 76).map((l) => `  ${l}`));
  const options = Object.entries(pass.options);
  if (options.length === 0) lines.push('  options: none');
  else {
    lines.push('  options:');
    const flags = options.map(([key, o]) => `--${pass.name}.${key} <${typeName(o)}>`);
    const w = Math.max(...flags.map((f) => f.length));
    options.forEach(([, o], i) => lines.push(`    ${flags[i]!.padEnd(w)}  ${o.help} (default: ${JSON.stringify(o.default)})`));
  }
  const stats = Object.entries(pass.statistics);
  if (stats.length === 0) lines.push('  statistics: none');
  else {
    lines.push('  statistics:');
    const w = Math.max(...stats.map(([k]) => k.length));
    for (const [k, help] of stats) lines.push(`    ${k.padEnd(w)}  ${help}`);
  }
  return lines.join('\n') + '\n';
}

function typeName(o: PassOption): string {
  return o.type === 'enum' ? (o.choices ?? []).join('|') : o.type;
}
