// README.md's code blocks, for the tests that run them as written (issue 16: the README's
// library and CLI examples are tests): test/package/readme.test.ts, test/package/install.test.ts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './files.ts';

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

const codeBlocks = [...README.matchAll(/```(?:js|ts)\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** The README's ```js or ```ts block whose first line is `// <file>…` (e.g. `// calib.mjs: …`). */
export function readmeBlock(file: string): string {
  const block = codeBlocks.find((b) => b.startsWith(`// ${file}`));
  if (!block) throw new Error(`README.md has no js or ts block starting // ${file}`);
  return block;
}

/** The README's ```js or ```ts block that contains `text` (for snippets without a file name). */
export function readmeBlockWith(text: string): string {
  const block = codeBlocks.find((b) => b.includes(text));
  if (!block) throw new Error(`README.md has no js or ts block containing ${text}`);
  return block;
}

/** The `npx convert …` lines of the README's ```sh blocks, `\` continuations joined, `# …` comments dropped. */
export function readmeConvertLines(): string[] {
  const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.replace(/\\\n\s*/g, ''));
  return blocks.flatMap((b) => b.split('\n')).map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l.startsWith('npx convert'));
}
