/**
 * This machine and process-id namespace as eight hex digits, written into the names of
 * temporary files and folders beside their process id. A process id says whether its run is
 * still going only on the machine, and in the pid namespace, that made it: two containers
 * sharing a volume, or two hosts sharing an NFS folder, see each other's ids as not running.
 * The cleanup of a killed run's files (stale-temps.ts) removes only names carrying this tag.
 * A reboot keeps it (the root pid namespace's id and the host name do not change); a new
 * container gets a new one, so what an earlier container left is not removed by a later one.
 */
import { createHash } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

function computeHostTag(): string {
  let namespace = '';
  try {
    // Linux: `pid:[4026531836]`, the namespace this process's id belongs to.
    namespace = readlinkSync('/proc/self/ns/pid');
  } catch {
    // Elsewhere the host name alone.
  }
  return createHash('sha256').update(`${hostname()}\n${namespace}`).digest('hex').slice(0, 8);
}

/** See the module comment. */
export const HOST_TAG: string = computeHostTag();
