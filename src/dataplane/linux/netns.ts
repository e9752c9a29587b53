/**
 * Network namespace references. The kernel mechanism's `inodeURL` arrives as `inode://<dev>/<ino>` (what
 * NSM's sendfd puts on the wire and what `ownNetnsUrl()` announces) or as a `file://` path. `inode://`
 * is resolved to a path usable by `nsenter --net=` by scanning `/run/netns/*` and `/proc/<pid>/ns/net`
 * for a file with that device and inode; results are cached and re-validated (stat) on every use.
 * A malformed URL (or a file that is not a network namespace) is an InvalidArgumentError naming the
 * mechanism parameter; a netns that does not exist is a NotFoundError naming the URL (INVALID_ARGUMENT
 * and NOT_FOUND at the gRPC edge); only a failure to look (e.g. EACCES) stays a DataplaneError.
 */
import { readdir, stat, statfs } from 'node:fs/promises';
import { PARAM_INODE_URL } from '../../api/constants.js';
import { MAX_URL_LENGTH } from '../../api/limits.js';
import { DataplaneError, InvalidArgumentError, NotFoundError, PermissionDeniedError } from '../../core/errors.js';

/** The field a bad netns URL is reported under: the kernel mechanism's parameter. */
export const NETNS_FIELD = `mechanism.parameters.${PARAM_INODE_URL}`;

const NSFS_MAGIC = 0x6e736673;

export interface NetnsId {
  dev: string;
  ino: string;
}

export function inodeUrl(id: NetnsId): string {
  return `inode://${id.dev}/${id.ino}`;
}

export function parseInodeUrl(url: string): NetnsId | undefined {
  const m = /^inode:\/\/(\d+)\/(\d+)$/.exec(url);
  return m ? { dev: m[1]!, ino: m[2]! } : undefined;
}

async function idOf(path: string): Promise<NetnsId | undefined> {
  try {
    const s = await stat(path, { bigint: true });
    return { dev: s.dev.toString(), ino: s.ino.toString() };
  } catch {
    return undefined;
  }
}

/** `inode://<dev>/<ino>` of the netns at `path`. */
export async function netnsUrlOf(path: string): Promise<string> {
  const id = await idOf(path);
  if (!id) throw new NotFoundError(`netns ${path} not found`);
  return inodeUrl(id);
}

/** `inode://<dev>/<ino>` of the caller's own netns. */
export async function ownNetnsUrl(): Promise<string> {
  const id = await idOf('/proc/self/ns/net');
  if (!id) throw new DataplaneError('resolve netns', 'cannot stat /proc/self/ns/net');
  return inodeUrl(id);
}

/**
 * Refuses a netns the data plane must never put a connection's interface in: its own (on Kubernetes the
 * forwarder is hostNetwork, so that is the node's) and pid 1's (the host's, or the container's init).
 * `path` is what `NetnsResolver.resolve` gave for `url`; `side` names the end in the error.
 */
export async function assertNotPrivileged(url: string, path: string, side: string): Promise<void> {
  const [id, own, init] = await Promise.all([idOf(path), idOf('/proc/self/ns/net'), idOf('/proc/1/ns/net')]);
  if (!id) return; // gone meanwhile: the next step fails with its own error
  const which = own && same(own, id) ? "the forwarder's own network namespace" : init && same(init, id) ? "pid 1's (the host's) network namespace" : undefined;
  if (which) throw new PermissionDeniedError(`${side} netns ${url} is ${which}; a connection's interfaces are only created in a pod's network namespace`);
}

/** Every distinct netns visible on the machine, by inode, with one path each (named ones preferred). */
export async function listNetns(): Promise<Array<{ url: string; path: string }>> {
  const seen = new Map<string, string>();
  const add = async (path: string) => {
    const id = await idOf(path);
    if (id && !seen.has(inodeUrl(id))) seen.set(inodeUrl(id), path);
  };
  for (const n of await readdir('/run/netns').catch(() => [] as string[])) await add(`/run/netns/${n}`);
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
  await Promise.all(pids.map((p) => add(`/proc/${p}/ns/net`)));
  return [...seen].map(([url, path]) => ({ url, path }));
}

/** Resolves `inodeURL`s to nsfs paths, with a cache that is re-validated on every hit. */
export class NetnsResolver {
  readonly #cache = new Map<string, string>();

  async resolve(url: string): Promise<string> {
    if (url.length > MAX_URL_LENGTH) throw new InvalidArgumentError(NETNS_FIELD, url, `longer than ${MAX_URL_LENGTH} characters`);
    const id = parseInodeUrl(url);
    if (id) return this.#resolveInode(url, id);
    if (url.startsWith('file://')) {
      let path: string;
      try {
        path = decodeURIComponent(url.slice('file://'.length));
      } catch {
        throw new InvalidArgumentError(NETNS_FIELD, url, 'not valid percent-encoding');
      }
      if (!path.startsWith('/') || path.includes('\0')) throw new InvalidArgumentError(NETNS_FIELD, url, 'not an absolute file URL (file:///path)');
      await assertNsfs(url, path);
      return path;
    }
    throw new InvalidArgumentError(NETNS_FIELD, url, 'unsupported netns URL (expected inode://<dev>/<ino> or file:///path)');
  }

  /** Like resolve, but undefined when the netns does not exist or cannot be named (for idempotent removal). */
  async tryResolve(url: string): Promise<string | undefined> {
    try {
      return await this.resolve(url);
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof InvalidArgumentError) return undefined;
      if (err instanceof DataplaneError && err.step === 'resolve netns') return undefined;
      throw err;
    }
  }

  async #resolveInode(url: string, id: NetnsId): Promise<string> {
    const hit = this.#cache.get(url);
    if (hit && same(await idOf(hit), id)) return hit;
    this.#cache.delete(url);
    const candidates = [
      ...(await readdir('/run/netns').catch(() => [] as string[])).map((n) => `/run/netns/${n}`),
    ];
    for (const p of candidates) {
      if (same(await idOf(p), id)) return this.#remember(url, p);
    }
    const pids = (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
    const found = await Promise.all(pids.map(async (p) => ((await same(await idOf(`/proc/${p}/ns/net`), id)) ? `/proc/${p}/ns/net` : undefined)));
    const path = found.find((p) => p !== undefined);
    if (!path) throw new NotFoundError(`netns ${url} not found: no netns with device ${id.dev} inode ${id.ino} in /run/netns or /proc/*/ns/net`);
    return this.#remember(url, path);
  }

  #remember(url: string, path: string): string {
    this.#cache.set(url, path);
    return path;
  }
}

function same(a: NetnsId | undefined, b: NetnsId): boolean {
  return !!a && a.dev === b.dev && a.ino === b.ino;
}

async function assertNsfs(url: string, path: string): Promise<void> {
  let s;
  try {
    s = await statfs(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`netns ${url} not found: ${path} does not exist`, { cause: err });
    throw new DataplaneError('resolve netns', `${url}: ${code ?? 'error'} on ${path}`, { cause: err });
  }
  if (Number(s.type) !== NSFS_MAGIC) throw new InvalidArgumentError(NETNS_FIELD, url, `${path} is not a network namespace`);
}
