/**
 * Glob patterns on node names for `include` / `exclude`: `*` matches any run of characters
 * (slashes included, since ONNX node names are flat strings like `/blocks.0/ffn/ffn.2/MatMul`),
 * `?` one character. Everything else is literal.
 */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** True when `name` passes the include list (empty = everything) and no exclude pattern. */
export function selectedByGlobs(name: string, include: readonly string[], exclude: readonly string[]): boolean {
  if (include.length && !include.some((p) => globToRegExp(p).test(name))) return false;
  return !exclude.some((p) => globToRegExp(p).test(name));
}
