// Its own file so that the library's declarations (index.d.ts) never reach the type import
// of @huggingface/transformers in optional-import.ts: users without it still type-check.

/** A runtime package that cannot be imported; the message names it and how to install it. */
export class MissingPackageError extends Error {
  constructor(pkg: string, neededFor: string, install: string, cause: unknown) {
    super(`${neededFor} needs the package ${pkg}, which cannot be imported (${firstLine(cause)}); install it with: ${install}`, { cause });
    this.name = 'MissingPackageError';
  }
}

function firstLine(e: unknown): string {
  const s = e instanceof Error ? e.message : String(e);
  return s.split('\n', 1)[0] ?? s;
}
