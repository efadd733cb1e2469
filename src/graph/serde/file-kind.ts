/**
 * What a path that is not a regular file is, for messages: reading a FIFO or a character
 * device such as /dev/zero blocks or never ends, so every file a run reads is checked first.
 */
import type { Stats } from 'node:fs';

/** `a FIFO`, `a character device`, …: what `st` is when it is not a regular file or a folder. */
export function specialFileKind(st: Stats): string {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}
