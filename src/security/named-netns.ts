/**
 * The pods of the one-host mesh as the Workload API's identity policy sees them: every named network
 * namespace (`/run/netns/<name>`, what `ip netns add` and `nsm run --pod` create), by netns identity. A
 * named netns is a pod whether `nsm run` or a person (`ip netns exec POD nsm nsc`) started its process;
 * only root can bind a netns under /run/netns, so the list is root's word, not a caller's. The netns this
 * process runs in (the host's, where the mesh's components are known by pid) is never a pod, even if named.
 */
import { readdir } from 'node:fs/promises';
import { netnsIdentity, processNetns } from '../core/peer.js';
import { isPathSegment } from './identity-policy.js';

export const NAMED_NETNS_DIR = '/run/netns';

/** Netns identity (`inode://<dev>/<ino>`) → name, for each named netns whose name can be a SPIFFE ID segment. */
export async function namedNetnsPods(dir = NAMED_NETNS_DIR): Promise<Map<string, string>> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const ids = await Promise.all(names.filter(isPathSegment).map(async (n) => [await netnsIdentity(`file://${dir}/${encodeURIComponent(n)}`), n] as const));
  const own = await processNetns('self');
  const out = new Map<string, string>();
  for (const [id, name] of ids) if (id && id !== own) out.set(id, name);
  return out;
}
