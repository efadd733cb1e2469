import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/passes/log.ts';
import { InvalidInputError, PassFailure, PassManager, type PassStep } from '../../src/passes/manager.ts';
import { definePass, type Pass, PassOptionError } from '../../src/passes/pass.ts';
import { tinyModel } from '../helpers/tiny-model.ts';

const tiny = tinyModel;

const trace: string[] = [];
function tracer(name: string, extra: Partial<Pass> = {}): Pass {
  return definePass({
    name,
    summary: `records that ${name} ran`,
    options: { label: { type: 'string', default: name, help: 'what to record' } },
    statistics: { calls: 'times run', other: 'never reported' },
    run: (_m, ctx, o) => {
      trace.push(o.label);
      ctx.log.info(`ran ${o.label}`);
      return { modified: false, stats: { calls: 1 } };
    },
    ...(extra as object),
  }) as Pass;
}

const thrower = (message: string): Pass =>
  definePass({
    name: 'boom',
    summary: 'throws',
    options: {},
    statistics: {},
    run: () => {
      throw new Error(message);
    },
  }) as Pass;

/** Removes the Relu by force, leaving Neg reading a value nobody produces. */
const breaker = definePass({
  name: 'breaker',
  summary: 'leaves a dangling use',
  options: {},
  statistics: {},
  run: (m) => {
    const relu = m.graph.nodes().find((n) => n.opType === 'Relu')!;
    m.graph.remove(relu, { force: true });
    return { modified: true, stats: {} };
  },
}) as Pass;

const step = (pass: Pass, options?: Record<string, unknown>): PassStep => ({ pass, plugin: 'test', options });

describe('PassManager', () => {
  it('runs passes in order with resolved options and collects every declared statistic', async () => {
    trace.length = 0;
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l) });
    const r = await new PassManager([step(tracer('a')), step(tracer('b'), { label: 'B!' }), step(tracer('a'), { label: 'again' })], { log }).run(tiny());
    expect(trace).toEqual(['a', 'B!', 'again']);
    expect(r.passes.map((p) => [p.name, p.plugin, p.stats])).toEqual([
      ['a', 'test', { calls: 1, other: 0 }],
      ['b', 'test', { calls: 1, other: 0 }],
      ['a', 'test', { calls: 1, other: 0 }],
    ]);
    expect(r.modified).toBe(false);
    expect(lines).toEqual(['[a] ran a', '[b] ran B!', '[a] ran again']);
  });

  it('quiet silences pass logs', async () => {
    const lines: string[] = [];
    await new PassManager([step(tracer('a'))], { log: createLogger({ write: (l) => lines.push(l), quiet: true }) }).run(tiny());
    expect(lines).toEqual([]);
  });

  it('reports a throwing pass under its plugin, naming the passes before it, keeping the cause', async () => {
    const err = await new PassManager([step(tracer('a')), step(tracer('b')), step(thrower('kaboom'))]).run(tiny()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PassFailure);
    expect((err as Error).message).toBe('pass boom (plugin test): kaboom; after: a, b');
    expect(((err as Error).cause as Error).message).toBe('kaboom');
    expect(err).toMatchObject({ passName: 'boom', plugin: 'test', after: ['a', 'b'] });
  });

  it('names no earlier pass when nothing ran before, and handles rejected promises', async () => {
    const asyncThrower = definePass({
      name: 'later',
      summary: 's',
      options: {},
      statistics: {},
      run: async () => {
        await new Promise((r) => setTimeout(r, 1));
        throw new Error('late failure\nsecond line');
      },
    }) as Pass;
    await expect(new PassManager([step(asyncThrower)]).run(tiny())).rejects.toThrow('pass later (plugin test): late failure second line');
  });

  it('catches a pass that leaves an invalid graph (verification on by default under vitest)', async () => {
    expect(process.env.VITEST).toBeTruthy();
    const err = await new PassManager([step(tracer('a')), step(breaker)]).run(tiny()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PassFailure);
    expect((err as Error).message).toMatch(/^pass breaker \(plugin test\): left an invalid graph: \[\w+\] .*r.*; after: a$/);
  });

  it('does not verify when told not to (only the structural checks run)', async () => {
    // A used value with an empty name breaks the full verifier's rules, not the structural checks'
    // (a duplicate node name, the example here before, is structural since: onnxruntime refuses it).
    const renamer = definePass({ name: 'renamer', summary: "empties the name of relu's output", options: {}, statistics: {}, run: (m) => {
      m.graph.nodes().find((n) => n.opType === 'Relu')!.outputs[0]!.name = '';
      return { modified: true, stats: {} };
    } }) as Pass;
    const r = await new PassManager([step(renamer)], { verify: false }).run(tiny());
    expect(r.passes[0]!.modified).toBe(true);
    await expect(new PassManager([step(renamer)], { verify: true }).run(tiny())).rejects.toBeInstanceOf(PassFailure);
    // A dangling input is structural: caught after the last pass even without verify.
    await expect(new PassManager([step(breaker)], { verify: false }).run(tiny())).rejects.toThrow(/left an invalid graph: \[order\] .*%r is not defined in its scope/);
  });

  it('refuses an invalid input before running any pass', async () => {
    trace.length = 0;
    const m = tiny();
    m.graph.remove(m.graph.nodes().find((n) => n.opType === 'Relu')!, { force: true });
    await expect(new PassManager([step(tracer('a'))]).run(m)).rejects.toBeInstanceOf(InvalidInputError);
    await expect(new PassManager([step(tracer('a'))], { verify: false }).run(m)).rejects.toBeInstanceOf(InvalidInputError);
    expect(trace).toEqual([]);
  });

  it('checks option keys of every step before running any', async () => {
    trace.length = 0;
    const err = await new PassManager([step(tracer('a')), step(tracer('b'), { lable: 'x' })]).run(tiny()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PassOptionError);
    expect((err as Error).message).toBe("pass b: unknown option 'lable' (did you mean label?); valid keys: label");
    expect(trace).toEqual([]);
  });

  it.each([
    [{ modified: 'yes', stats: {} }, "returned modified: 'yes'; expected true or false"],
    [{ modified: true, stats: { bogus: 1 } }, "reported undeclared statistic 'bogus'; declared: calls, other"],
    [{ modified: true, stats: { calls: NaN } }, 'reported statistic calls = NaN; expected a finite number'],
    [undefined, 'returned undefined instead of { modified, stats }'],
  ])('rejects a malformed result %j', async (result, message) => {
    const bad = tracer('bad', { run: () => result as never });
    await expect(new PassManager([step(bad)]).run(tiny())).rejects.toThrow(`pass bad (plugin test): ${message}`);
  });
});
