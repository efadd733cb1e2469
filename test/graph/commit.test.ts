// commitFiles puts several finished temporary files in place all or nothing: a failure part
// way leaves the previous files exactly as they were (found by a safety trial: a data file
// replaced under a model that stayed old). A rename onto a non-empty folder fails even as
// root, which makes the failure deterministic here.
import { lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommitError, commitFiles } from '../../src/graph/serde/commit.ts';
import { listDir, removeDir, scratchDir } from '../helpers/files.ts';

let dir: string;
beforeAll(() => {
  dir = scratchDir('commit');
});
afterAll(() => removeDir(dir));

/** A fresh folder with `files` (name → content) written in it. */
function folder(name: string, files: Record<string, string>): string {
  const d = join(dir, name);
  mkdirSync(d);
  for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
  return d;
}

describe('commitFiles', () => {
  it('replaces every final, removes a final without a temp, and leaves no set-aside file', () => {
    const d = folder('ok', { a: 'old a', b: 'old b', stale: 'old', 'a.tmp': 'new a', 'b.tmp': 'new b', 'c.tmp': 'new c' });
    commitFiles([{ temp: join(d, 'a.tmp'), final: join(d, 'a') }, { temp: join(d, 'b.tmp'), final: join(d, 'b') }, { temp: join(d, 'c.tmp'), final: join(d, 'c') }, { final: join(d, 'stale') }]);
    expect(listDir(d)).toEqual(['a', 'b', 'c']);
    expect(['a', 'b', 'c'].map((f) => readFileSync(join(d, f), 'utf8'))).toEqual(['new a', 'new b', 'new c']);
  });

  it('on a failure part way, removes the new files placed and puts every old one back', () => {
    const d = folder('fail', { a: 'old a', 'a.tmp': 'new a', 'b.tmp': 'new b', 'c.tmp': 'new c', stale: 'old' });
    // b's final is a non-empty folder: a's rename succeeds, b's fails.
    mkdirSync(join(d, 'b'));
    writeFileSync(join(d, 'b', 'keep'), 'kept');
    let error: unknown;
    try {
      commitFiles([{ temp: join(d, 'a.tmp'), final: join(d, 'a') }, { final: join(d, 'stale') }, { temp: join(d, 'b.tmp'), final: join(d, 'b') }, { temp: join(d, 'c.tmp'), final: join(d, 'c') }]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CommitError);
    expect((error as CommitError).message).toBe(`${join(d, 'b')}: cannot write: it is a folder (EISDIR); the previous files were left as they were`);
    expect((error as CommitError).restored).toBe(true);
    // The old files as they were (a.tmp was placed, then removed); the temporary files not
    // placed are the caller's to remove.
    expect(listDir(d)).toEqual(['a', 'b', 'b.tmp', 'c.tmp', 'stale']);
    expect(readFileSync(join(d, 'a'), 'utf8')).toBe('old a');
    expect(readFileSync(join(d, 'stale'), 'utf8')).toBe('old');
    expect(readFileSync(join(d, 'b', 'keep'), 'utf8')).toBe('kept');
  });

  it('a failure before an old file was replaced leaves no second name of it beside it (found with a sticky folder, as another user)', () => {
    const d = folder('early', { a: 'old a', 'a.tmp': 'new a', 'b.tmp': 'new b' });
    mkdirSync(join(d, 'b'));
    writeFileSync(join(d, 'b', 'keep'), 'kept');
    // a gets its second name first, then b's rename fails before a's.
    expect(() => commitFiles([{ temp: join(d, 'a.tmp'), final: join(d, 'a') }, { temp: join(d, 'b.tmp'), final: join(d, 'b') }].reverse())).toThrow(CommitError);
    expect(listDir(d)).toEqual(['a', 'a.tmp', 'b', 'b.tmp']);
    expect(readFileSync(join(d, 'a'), 'utf8')).toBe('old a');
    expect(lstatSync(join(d, 'a')).nlink).toBe(1);
  });

  it('moves a symbolic link aside itself, dangling or not, never what it points to', () => {
    const d = folder('links', { target: 'target', 'a.tmp': 'new a', 'b.tmp': 'new b', 'c.tmp': 'new c' });
    symlinkSync(join(d, 'target'), join(d, 'a'));
    symlinkSync(join(d, 'missing'), join(d, 'b'));
    mkdirSync(join(d, 'c'));
    writeFileSync(join(d, 'c', 'keep'), 'kept');
    expect(() => commitFiles([{ temp: join(d, 'a.tmp'), final: join(d, 'a') }, { temp: join(d, 'b.tmp'), final: join(d, 'b') }, { temp: join(d, 'c.tmp'), final: join(d, 'c') }])).toThrow(CommitError);
    // Both links are back as links; the file one pointed to was not touched.
    expect(readlinkSync(join(d, 'a'))).toBe(join(d, 'target'));
    expect(readlinkSync(join(d, 'b'))).toBe(join(d, 'missing'));
    expect(readFileSync(join(d, 'target'), 'utf8')).toBe('target');
    expect(listDir(d)).toEqual(['a', 'b', 'c', 'c.tmp', 'target']);
    // Without the folder in the way the links are replaced by the new files, the target kept.
    writeFileSync(join(d, 'a.tmp'), 'new a');
    writeFileSync(join(d, 'b.tmp'), 'new b');
    commitFiles([{ temp: join(d, 'a.tmp'), final: join(d, 'a') }, { temp: join(d, 'b.tmp'), final: join(d, 'b') }]);
    expect(lstatSync(join(d, 'a')).isFile()).toBe(true);
    expect(readFileSync(join(d, 'b'), 'utf8')).toBe('new b');
    expect(readFileSync(join(d, 'target'), 'utf8')).toBe('target');
    expect(listDir(d)).toEqual(['a', 'b', 'c', 'c.tmp', 'target']);
    // A link to a folder is replaced as a link: the folder and what is in it stay.
    symlinkSync(join(d, 'c'), join(d, 'to-c'));
    commitFiles([{ temp: join(d, 'c.tmp'), final: join(d, 'to-c') }]);
    expect(readFileSync(join(d, 'to-c'), 'utf8')).toBe('new c');
    expect(readFileSync(join(d, 'c', 'keep'), 'utf8')).toBe('kept');
    expect(listDir(d)).toEqual(['a', 'b', 'c', 'target', 'to-c']);
  });
});
