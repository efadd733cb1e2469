// Bad inputs whose messages used to name the wrong thing (a temp file, a raw errno, "need -64
// bytes", "is a model folder") or that were accepted silently (out-of-range options): each
// now gets one line naming the user's file, tensor, option or module, exit 1, nothing written.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataType } from '../../src/graph/ir/dtype.ts';
import { Graph, Model, Node, Tensor, Value } from '../../src/graph/ir/index.ts';
import { decodeModel, encodeModel } from '../../src/graph/proto/codec.ts';
import { loadModel, saveModel } from '../../src/graph/serde/io.ts';
import { removeDir, scratchDir } from '../helpers/files.ts';
import { cli } from '../helpers/cli.ts';
import { runCli } from '../helpers/cli-process.ts';
import { expectRefused } from '../helpers/refusal.ts';

let dir: string;
let inDir: string;
let out: string;
let model: string;
beforeAll(() => {
  dir = scratchDir('messages');
  [inDir, out] = [join(dir, 'in'), join(dir, 'out')];
  mkdirSync(inDir);
  mkdirSync(out);
  model = join(inDir, 'two.onnx');
  saveModel(twoLayers(3), model);
});
afterAll(() => {
  chmodSync(out, 0o755);
  removeDir(dir);
});

/** x → mm1 (x·W1) → h → mm2 (h·W2) → y; W1 filled with `w1`. A synthetic graph. */
function twoLayers(w1: number): Model {
  const g = new Graph({ name: 'two' });
  const m = new Model(g, { irVersion: 8, opset: 17 });
  const f32 = (dims: number[]) => ({ tensor_type: { elem_type: DataType.FLOAT, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });
  const x = new Value('x', { type: f32([1, 4, 32]) });
  g.addInput(x);
  const w = (name: string, k: number, n: number, v: number) => {
    const value = new Value(name, { initializer: Tensor.fromFloat32(name, [k, n], new Float32Array(k * n).map((_, i) => v * (1 + (i % 7) / 10))) });
    g.addInitializer(value);
    return value;
  };
  const a = new Node({ opType: 'MatMul', name: 'mm1', inputs: [x, w('W1', 32, 32, w1)], outputs: ['h'] });
  const b = new Node({ opType: 'MatMul', name: 'mm2', inputs: [a.output(), w('W2', 32, 16, 0.1)], outputs: ['y'] });
  g.append(a, b);
  b.output().type = f32([1, 4, 16]);
  g.addOutput(b.output());
  return m;
}

describe('messages name the user\'s file, tensor, option or module', () => {
  it('an output folder that cannot be written names the output, not the temporary file', async () => {
    // As root a mode bit does not stop a write, so /sys (where creating a file fails) is the
    // unwritable folder; as another user, a read-only folder is refused before any pass.
    const says = /\/sys\/out\.onnx: cannot write: permission denied \(is the folder read-only\?\) \(EACCES\)/;
    const err = await expectRefused([model, '-o', '/sys/out.onnx'], says, { input: inDir, output: out });
    expect(err).not.toMatch(/\.tmp/);
    if (process.getuid?.() !== 0) {
      chmodSync(out, 0o555);
      await expectRefused([model, '-o', join(out, 'x.onnx')], /out\/x\.onnx: folder .* is not writable/, { input: inDir, output: out });
      chmodSync(out, 0o755);
    }
  });

  it('a negative dim names the tensor', async () => {
    const bad = join(inDir, 'negative-dim.onnx');
    const p = decodeModel(readFileSync(model)) as Record<string, any>;
    p.graph.initializer[0].dims = [-4, 16];
    writeFileSync(bad, encodeModel(p));
    await expectRefused([bad, '-o', join(out, 'x.onnx')], /negative-dim\.onnx: tensor W1: dims \[-4, 16\] hold -4; a tensor's dims must be non-negative integers/, { input: inDir, output: out });
  });

  it('typed-field data (float_data, …) that does not fill the shape names the tensor, as short raw_data does', async () => {
    // The real tiny-arvd model with its first weight moved from raw_data to float_data: 3 values
    // for hundreds of elements used to round-trip with exit 0 into a model onnxruntime refuses.
    const p = decodeModel(readFileSync('examples/tiny-arvd/model.onnx')) as Record<string, any>;
    const init = (p.graph.initializer as Record<string, any>[]).find((t) => t.data_type === DataType.FLOAT && t.dims.length === 2)!;
    const n = init.dims.map(Number).reduce((a: number, b: number) => a * b, 1);
    delete init.raw_data;
    init.float_data = [1, 2, 3];
    const short = join(inDir, 'short-float-data.onnx');
    writeFileSync(short, encodeModel(p));
    const says = new RegExp(`short-float-data\\.onnx: tensor ${init.name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: float_data has 3 values, its type and shape \\(f32\\[${init.dims.join('x')}\\]\\) need ${n}`);
    await expectRefused([short, '-o', join(out, 'x.onnx')], says, { input: inDir, output: out });
    // No data at all (no raw_data, no typed values, not external) for a non-empty tensor.
    init.float_data = [];
    const empty = join(inDir, 'no-data.onnx');
    writeFileSync(empty, encodeModel(p));
    await expectRefused([empty, '-o', join(out, 'x.onnx')], /no-data\.onnx: tensor .*: has no data \(no raw_data, no typed values, not external\)/, { input: inDir, output: out });
    // What ONNX allows still loads: a scalar's one value, two float_data entries per complex64.
    init.dims = [];
    init.float_data = [7];
    expect(loadModel(encodeModel(p)).graph.initializers.get(init.name)?.initializer?.toFloat32()).toEqual(new Float32Array([7]));
    init.data_type = DataType.COMPLEX64;
    init.dims = [2];
    init.float_data = [1, 0, 2, 0];
    expect(() => loadModel(encodeModel(p))).not.toThrow();
  });

  it('calibration options that cannot apply: a missing read file is refused, an unused module is warned about, an explicit bias-correction without data is refused', async () => {
    // Found by a user trial: each of these exited 0 without a word about the option.
    const x = join(out, 'x.onnx');
    // The runs that succeed write outside the folders the refusals compare.
    const ok = join(dir, 'unused-calib.onnx');
    const missing = join(inDir, 'does-not-exist.mjs');
    await expectRefused([model, '-o', x, '--pass', 'minmax', '--minmax.a-bits', 'none', '--minmax.w-bits', '4', '--minmax.calib', missing], /--minmax\.calib .*does-not-exist\.mjs: file not found/, { input: inDir, output: out });
    const calib = join(inDir, 'unused.mjs');
    writeFileSync(calib, "throw new Error('an unused module must not be loaded');\n");
    const minmax = await cli(model, '-o', ok, '--pass', 'minmax', '--minmax.a-bits', 'none', '--minmax.w-bits', '4', '--minmax.calib', calib);
    expect(minmax.code, minmax.err).toBe(0);
    expect(minmax.err).toMatch(/\[minmax\] warning: calib .*unused\.mjs is not used: with a-bits none, bias-correction false this run needs no calibration data \(it serves activation ranges or bias correction\); it is not read/);
    const qarvd = await cli(model, '-o', ok, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.reconstruct', 'none', '--q-arvd.bias-correction', 'false', '--q-arvd.calib', calib);
    expect(qarvd.code, qarvd.err).toBe(0);
    expect(qarvd.err).toMatch(/\[q-arvd\] warning: calib .*unused\.mjs is not used: with a-bits none, reconstruct none, bias-correction false this run needs no calibration data \(it serves activation ranges, reconstruction or bias correction\)/);
    await expectRefused([model, '-o', x, '--pass', 'minmax', '--minmax.a-bits', 'none', '--minmax.bias-correction', 'true'], /pass minmax \(plugin q-arvd\): option bias-correction true needs calibration data, and this weight-only run has none: give calib or prompts/, { input: inDir, output: out });
    await expectRefused([model, '-o', x, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.reconstruct', 'gptq'], /option reconstruct gptq needs calibration data/, { input: inDir, output: out });
    // integer-kernels never has no float form for blocked weights: said, not ignored (a docs review).
    const blocked = await cli(model, '-o', ok, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.w-bits', '4', '--q-arvd.block-size', '32', '--q-arvd.integer-kernels', 'never');
    expect(blocked.code, blocked.err).toBe(0);
    expect(blocked.err).toMatch(/\[q-arvd\] warning: integer-kernels never changes nothing here: blocked weights \(block-size 32\) keep their integer form/);
    // The defaults (q-arvd: gptq and bias correction) without data still round to nearest, as the log says.
    const defaults = await cli(model, '-o', ok, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none');
    expect(defaults.code, defaults.err).toBe(0);
    expect(defaults.err).toMatch(/weight-only without calibration data: weights rounded to nearest/);
  });

  it('a plugin pass that never settles, or that calls process.exit(0), ends with one line naming it and exit 1 (a child process)', async () => {
    // Found by a user trial: the first exited 13 with nothing on stderr, the second 0 with no output written.
    const plugin = join(inDir, 'rogue-plugin.mjs');
    writeFileSync(plugin, [
      "export default { name: 'rogue', version: '1.0.0', passes: [",
      "  { name: 'hang', summary: 'never settles', options: {}, statistics: {}, run: () => new Promise(() => {}) },",
      "  { name: 'quit', summary: 'exits', options: {}, statistics: {}, run: () => process.exit(0) },",
      "  { name: 'boom', summary: 'throws from a timer', options: {}, statistics: {}, run: () => new Promise(() => setTimeout(() => { throw new Error('boom'); }, 10)) },",
      "  { name: 'handled', summary: 'an exception its own listener takes, then an exit', options: {}, statistics: {}, run: () => new Promise(() => { process.on('uncaughtException', () => {}); setTimeout(() => { throw new Error('taken'); }, 5); setTimeout(() => process.exit(0), 100); }) },",
      "  { name: 'spin', summary: 'runs until interrupted', options: {}, statistics: {}, run: () => new Promise(() => { process.stderr.write('spinning\\n'); setInterval(() => {}, 1000); }) },",
      '] };',
    ].join('\n'));
    const x = join(out, 'rogue.onnx');
    const hang = await runCli([model, '-o', x, '--plugin', plugin, '--pass', 'hang'], { timeoutMs: 30_000 });
    expect(hang.stderr.trimEnd().split('\n').at(-1)).toBe('convert: error: pass hang (plugin rogue) never finished (its promise never settled, and nothing else was left to run) before the output was written; temporary files removed');
    expect(hang.code).toBe(1);
    const quit = await runCli([model, '-o', x, '--plugin', plugin, '--pass', 'quit'], { timeoutMs: 30_000 });
    expect(quit.stderr.trimEnd().split('\n').at(-1)).toBe('convert: error: pass quit (plugin rogue) exited the process (process.exit(0)) before the output was written; temporary files removed');
    expect(quit.code).toBe(1);
    // An uncaught exception: Node prints its stack too; a line of its own still names the pass.
    const boom = await runCli([model, '-o', x, '--plugin', plugin, '--pass', 'boom'], { timeoutMs: 30_000 });
    expect(boom.stderr.split('\n')).toContain('convert: error: pass boom (plugin rogue) ended with an uncaught exception (boom) before the output was written; temporary files removed');
    expect(boom.code).toBe(1);
    // An exception a listener took did not end the process: the exit that did is named (found by review).
    const handled = await runCli([model, '-o', x, '--plugin', plugin, '--pass', 'handled'], { timeoutMs: 30_000 });
    expect(handled.stderr.trimEnd().split('\n').at(-1)).toBe('convert: error: pass handled (plugin rogue) exited the process (process.exit(0)) before the output was written; temporary files removed');
    expect(handled.code).toBe(1);
    expect(existsSync(x)).toBe(false);
    // Ctrl-C keeps its own line and code: the guard stays out of deliberate exits.
    let sent = false;
    const interrupted = await runCli([model, '-o', x, '--plugin', plugin, '--pass', 'spin'], {
      timeoutMs: 30_000,
      onStderr: (text, child) => {
        if (!sent && text.includes('spinning')) child.kill('SIGINT');
        sent ||= text.includes('spinning');
      },
    });
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toMatch(/convert: interrupted \(SIGINT\)/);
    expect(interrupted.stderr).not.toMatch(/never finished|exited the process/);
  });

  it('an empty folder is not called a model folder', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const says = /empty: is a folder, not an \.onnx file, and not a transformers\.js model folder \(no config\.json\)/;
    await expectRefused([empty], says, { input: empty, output: out });
    await expectRefused([empty, '-o', join(out, 'x.onnx')], says, { input: empty, output: out });
  });

  it.each([
    ['smooth-alpha', '5', 'between 0 and 1 (exclusive), got 5'],
    ['smooth-alpha', '0', 'between 0 and 1 (exclusive), got 0'],
    ['reservoir-rows', '0', 'at least 1, got 0'],
    ['calib-timeout', '0', 'a number of seconds above 0 (and below 24 days), got 0'],
    ['calib-threads', '-1', 'at least 0 (0: onnxruntime chooses), got -1'],
    ['threads', '-1', 'at least 0 (0: one per core), got -1'],
    ['sensitivity-samples', '-2', 'at least 0 (0: all samples), got -2'],
    ['iterations', '0', 'at least 1, got 0'],
    // Checked on a run without calibration data too (a-bits none here).
    ['statistics-memory', 'lots', "a byte count above 0 such as 4GiB, 512MiB or 2000000000, got 'lots'"],
  ])('--q-arvd.%s %s is refused naming the option', async (option, value, must) => {
    const says = new RegExp(`pass q-arvd \\(plugin q-arvd\\): option ${option} must be ${must.replace(/[()]/g, '\\$&')}`);
    await expectRefused([model, '-o', join(out, 'x.onnx'), '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', `--q-arvd.${option}`, value], says, { input: inDir, output: out });
  });

  it('a model onnxruntime cannot load, met when calibration opens it: the message does not name the temporary copy (a user trial)', async () => {
    // Synthetic: an op onnxruntime does not know, which this project's loader has no reason to refuse.
    const unknownOp = twoLayers(0.1);
    const mm2 = [...unknownOp.graph].find((n) => n.name === 'mm2')!;
    const bad = new Node({ opType: 'NoSuchOp', name: 'bad', inputs: [mm2.output()], outputs: ['z'] });
    unknownOp.graph.append(bad);
    bad.output().type = mm2.output().type;
    unknownOp.graph.addOutput(bad.output());
    const path = join(inDir, 'unknown-op.onnx');
    saveModel(unknownOp, path);
    const calib = join(inDir, 'calib-unknown-op.mjs');
    writeFileSync(calib, "import * as ort from 'onnxruntime-node';\nexport async function* feeds() { yield { feeds: { x: new ort.Tensor('float32', new Float32Array(128).fill(0.5), [1, 4, 32]) } }; }\n");
    const err = await expectRefused([path, '-o', join(out, 'x.onnx'), '--pass', 'q-arvd', '--q-arvd.calib', calib], /onnxruntime cannot load the model to calibrate it \(the model with its layer inputs as extra outputs, a temporary copy\): This is an invalid model\. In Node, \("bad", NoSuchOp/, { input: inDir, output: out });
    expect(err).not.toMatch(/qarvd-calib-|augmented\.onnx/);
  });

  it('activations that overflow to Infinity name the value, the module and the sample', async () => {
    const overflowing = join(inDir, 'overflow.onnx');
    // Finite weights (non-finite ones are refused before calibration) whose products overflow.
    saveModel(twoLayers(3e37), overflowing);
    const calib = join(inDir, 'calib.mjs');
    writeFileSync(calib, "import * as ort from 'onnxruntime-node';\nexport async function* feeds() { yield { feeds: { x: new ort.Tensor('float32', new Float32Array(128).fill(0.5), [1, 4, 32]) } }; }\n");
    const says = /calibration module \S*calib\.mjs, sample 0: the model's value h \(the input of a layer to quantize\) holds Infinity at index \d+ with this sample's feeds/;
    for (const search of ['true', 'false']) {
      await expectRefused([overflowing, '-o', join(out, 'x.onnx'), '--pass', 'q-arvd', '--q-arvd.calib', calib, '--q-arvd.scale-search', search], says, { input: inDir, output: out });
    }
  });
});

describe('formatError', () => {
  it('names the user\'s file, not the temporary one of an atomic write', async () => {
    const { formatError } = await import('../../src/cli/errors.ts');
    const e = Object.assign(new Error("EACCES: permission denied, open '/data/out/report.json.18764.tmp'"), { code: 'EACCES' });
    expect(formatError(e, false)).toBe("convert: error: EACCES: permission denied, open '/data/out/report.json'\n");
    const e2 = Object.assign(new Error("ENOSPC: no space left on device, write '/d/out.onnx.18764.1796395860837.tmp'"), { code: 'ENOSPC' });
    expect(formatError(e2, false)).toBe("convert: error: ENOSPC: no space left on device, write '/d/out.onnx'\n");
  });
});

describe('attributes', () => {
  it('an attribute typed GRAPH without a graph names the node (found by the fuzz bench)', async () => {
    const { loadModel } = await import('../../src/graph/serde/io.ts');
    const bad = join(inDir, 'graph-attribute.onnx');
    const p = decodeModel(readFileSync(join(process.cwd(), 'test/fixtures/stories260K/stories260K.onnx'))) as Record<string, any>;
    const node = (p.graph.node as Record<string, any>[]).find((n) => n.attribute?.length)!;
    node.attribute[0].type = 5;
    writeFileSync(bad, encodeModel(p));
    const says = new RegExp(`graph-attribute\\.onnx: node ${node.name.replace(/[./]/g, '\\$&')} .*: attribute ${node.attribute[0].name} has type GRAPH but holds no graph`);
    expect(() => loadModel(bad)).toThrow(says);
    await expectRefused([bad, '-o', join(out, 'x.onnx')], says, { input: inDir, output: out });
  });
});

describe('what a run writes, and how it is named (found by a new-user trial of the packed tarball)', () => {
  it('a FIFO or device as -o, --<pass>.report or inspect --html is refused before any pass and stays what it was', async () => {
    const fifo = join(out, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const kind = () => (statSync(fifo).isFIFO() ? 'fifo' : 'other');
    await expectRefused([model, '-o', fifo, '--pass', 'minmax', '--minmax.a-bits', 'none'], /fifo: is a FIFO, not a regular file; outputs are written to a temporary file and renamed over the path, which would replace it: give a file path/, { input: inDir, output: out });
    await expectRefused([model, '-o', join(out, 'x.onnx'), '--pass', 'minmax', '--minmax.a-bits', 'none', '--minmax.report', fifo], /report \S*fifo: is a FIFO, not a regular file/, { input: inDir, output: out });
    await expectRefused(['inspect', model, '--html', fifo], /--html \S*fifo: is a FIFO, not a regular file/, { input: inDir, output: out });
    expect(kind()).toBe('fifo');
    // /dev/null is a character device: as root a rename over it would replace the system's.
    await expectRefused([model, '-o', '/dev/null', '--pass', 'minmax', '--minmax.a-bits', 'none'], /\/dev\/null: is a character device, not a regular file/, { input: inDir, output: out });
    expect(statSync('/dev/null').isCharacterDevice()).toBe(true);
  });

  it('a FIFO or device read as the model, a module, a prompt list or --config is refused without reading it (found by a safety trial: each hung, deaf to Ctrl-C)', async () => {
    const fifo = join(out, 'read-fifo');
    execFileSync('mkfifo', [fifo]);
    const folders = { input: inDir, output: out };
    const o = join(out, 'x.onnx');
    await expectRefused([fifo, '-o', o], /read-fifo: is a FIFO, not a regular file/, folders);
    await expectRefused(['/dev/zero', '-o', o], /\/dev\/zero: is a character device, not a regular file/, folders);
    await expectRefused([model, '-o', o, '--pass', 'q-arvd', '--q-arvd.calib', fifo], /--q-arvd\.calib \S*read-fifo: is a FIFO, not a regular file/, folders);
    await expectRefused([model, '-o', o, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.prompts', fifo], /--q-arvd\.prompts \S*read-fifo: is a FIFO, not a regular file/, folders);
    await expectRefused([model, '-o', o, '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.prompts', inDir], /--q-arvd\.prompts \S*: is a folder; give a file/, folders);
    await expectRefused([model, '-o', o, '--config', fifo], /read-fifo: is a FIFO, not a regular file/, folders);
    expect(statSync(fifo).isFIFO()).toBe(true);
  });

  it('a FIFO where a tokenizer file is refuses a prompt list by name; beside a plain conversion, which never reads it, it changes nothing (found by review)', async () => {
    const folder = join(dir, 'fifo-tokenizer');
    mkdirSync(folder);
    const m = join(folder, 'model.onnx');
    writeFileSync(m, readFileSync(model));
    execFileSync('mkfifo', [join(folder, 'tokenizer.json')]);
    execFileSync('mkfifo', [join(folder, 'config.json')]);
    const prompts = join(folder, 'prompts.txt');
    writeFileSync(prompts, 'once upon a time\n');
    const plain = await cli(m, '-o', join(out, 'beside-fifo.onnx'), '--pass', 'minmax', '--minmax.a-bits', 'none');
    expect(plain.code, plain.err).toBe(0);
    const r = await cli(m, '-o', join(out, 'fifo-prompts.onnx'), '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.prompts', prompts);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/tokenizer's \S*fifo-tokenizer\/tokenizer\.json is a FIFO, not a regular file/);
  });

  it('a tokenizer file linked from outside its folder refuses a prompt list unread; a link into the hub cache\'s blobs/ is read (noticed in a user trial: the tokenizer is found beside the model, not named, and its parse error quoted the linked file)', async () => {
    const folder = join(dir, 'linked-tokenizer');
    mkdirSync(folder);
    const m = join(folder, 'model.onnx');
    writeFileSync(m, readFileSync(model));
    const secret = join(dir, 'secret.txt');
    writeFileSync(secret, 'SECRET-TOKEN-1234 not json');
    symlinkSync(secret, join(folder, 'tokenizer.json'));
    const prompts = join(folder, 'prompts.txt');
    writeFileSync(prompts, 'once upon a time\n');
    const r = await cli(m, '-o', join(out, 'linked-tokenizer.onnx'), '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.prompts', prompts);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/tokenizer's \S*linked-tokenizer\/tokenizer\.json links outside its folder \(to \S*secret\.txt\); refusing to read it/);
    expect(r.err).not.toMatch(/SECRET-TOKEN/);
    expect(existsSync(join(out, 'linked-tokenizer.onnx'))).toBe(false);
    // In a hub cache snapshot the same link into the repository's blobs/ passes this check: the run
    // goes on to the next one (this synthetic model has no text inputs), which comes after it.
    const repo = join(dir, 'hub', 'models--org--tok');
    const snapshot = join(repo, 'snapshots', 'abc');
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(snapshot, { recursive: true });
    writeFileSync(join(repo, 'blobs', 'ccc'), 'not a tokenizer');
    symlinkSync('../../blobs/ccc', join(snapshot, 'tokenizer.json'));
    writeFileSync(join(snapshot, 'model.onnx'), readFileSync(model));
    const hub = await cli(join(snapshot, 'model.onnx'), '-o', join(out, 'hub-tokenizer.onnx'), '--pass', 'q-arvd', '--q-arvd.a-bits', 'none', '--q-arvd.prompts', prompts);
    expect(hub.code).toBe(1);
    expect(hub.err).not.toMatch(/links outside/);
    expect(hub.err).toMatch(/cannot make the graph input 'x' from text/);
  });

  it('an output name that leaves no room for the temporary name is refused before any pass, naming the output (found by a safety trial: ENAMETOOLONG after the passes, hidden by the cleanup\'s own error)', async () => {
    // Bytes, not characters: é is two bytes in UTF-8.
    for (const name of [`${'a'.repeat(240)}.onnx`, `${'é'.repeat(120)}.onnx`]) {
      const err = await expectRefused([model, '-o', join(out, name), '--pass', 'minmax', '--minmax.a-bits', 'none'], /: the file name is 245 bytes; it is written first under a temporary name \d+ bytes longer, over the 255-byte limit of a file name: choose a name of at most \d+ bytes$/m, { input: inDir, output: out });
      expect(err.startsWith(`convert: error: ${join(out, name)}: `)).toBe(true);
    }
    // A name that fits with the model's temporary suffix is written, though its data file's
    // would not fit: that file is only written with external data (found by review).
    const fits = join(dir, `${'b'.repeat(213)}.onnx`);
    const ok = await cli(model, '-o', fits, '--pass', 'minmax', '--minmax.a-bits', 'none', '--no-external-data');
    expect(ok.code, ok.err).toBe(0);
    expect(statSync(fits).isFile()).toBe(true);
    // The library's saveModel has no such check: its error still names the output and the real cause.
    const long = join(out, `${'a'.repeat(240)}.onnx`);
    expect(() => saveModel(twoLayers(1), long)).toThrow(`${long}: cannot write: the file name is too long (ENAMETOOLONG)`);
  });

  it('an output under a file is refused before any pass, naming the path that is not a folder', async () => {
    await expectRefused([model, '-o', join(model, 'out.onnx'), '--pass', 'minmax', '--minmax.a-bits', 'none'], /two\.onnx\/out\.onnx: \S*two\.onnx is not a folder/, { input: inDir, output: out });
  });

  it('an external data length that disagrees with the tensor\'s type and shape is refused at load, naming the tensor', async () => {
    // Found by review: a reused read buffer would otherwise show a shorter tensor's tail from the previous read.
    const folder = join(dir, 'short-length');
    mkdirSync(folder);
    const path = join(folder, 'model.onnx');
    saveModel(twoLayers(3), path, { externalData: true });
    const p = decodeModel(readFileSync(path)) as Record<string, any>;
    const entry = (p.graph.initializer as Record<string, any>[]).find((t) => t.name === 'W2')!.external_data.find((e: Record<string, string>) => e.key === 'length');
    entry.value = '1024';
    writeFileSync(path, encodeModel(p));
    await expectRefused(['inspect', path], /model\.onnx: tensor W2: external data length 1024 does not match its type and shape \(f32\[32x16\] is 2048 bytes\)/, { input: folder, output: out });
    // A length of 0 is read as "not given", as onnxruntime reads it (some published exports write it).
    entry.value = '0';
    writeFileSync(path, encodeModel(p));
    const good = join(folder, 'good.onnx');
    saveModel(twoLayers(3), good, { externalData: true });
    const layersOf = async (m: string) => {
      const r = await cli('inspect', m, '--format', 'json', '--min-k', '1');
      expect(r.code, r.err).toBe(0);
      return (JSON.parse(r.out) as { layers: unknown[] }).layers;
    };
    expect(await layersOf(path)).toEqual(await layersOf(good));
  });

  it('inspect --report refuses a report made on another model', async () => {
    const report = join(out, 'other.json');
    writeFileSync(report, JSON.stringify({ method: 'q-arvd', layers: [{ name: '/blocks.0/w2/MatMul' }, { name: 'mm1' }] }));
    await expectRefused(['inspect', model, '--html', join(out, 'r.html'), '--report', report], /--report \S*other\.json: 1 of its 2 layers are not MatMul\/Gemm nodes of \S*two\.onnx \(first: \/blocks\.0\/w2\/MatMul\)/, { input: inDir, output: out });
  });

  it('a missing argument of diff or inspect gets that command\'s usage; a misspelt pass option a suggestion', async () => {
    await expectRefused(['diff', model], /missing argument; usage: convert diff <before> <after> \(see convert diff --help\)/, { input: inDir, output: out });
    await expectRefused(['inspect'], /missing argument; usage: convert inspect <model>/, { input: inDir, output: out });
    await expectRefused(['-v', 'diff', model], /missing argument; usage: convert diff <before> <after>/, { input: inDir, output: out });
    // A short key gets no far-fetched suggestion (two edits turn 'ab' into 'tau').
    const short = await expectRefused([model, '-o', join(out, 'x.onnx'), '--pass', 'q-arvd', '--q-arvd.ab', '3'], /unknown option 'ab'; valid keys/, { input: inDir, output: out });
    expect(short).not.toMatch(/did you mean/);
    await expectRefused([model, '-o', join(out, 'x.onnx'), '--pass', 'minmax', '--minmax.w-bit', '4'], /unknown option 'w-bit' \(did you mean w-bits\?\); valid keys: /, { input: inDir, output: out });
  });
});
