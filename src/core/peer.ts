/**
 * Which network namespace is at the other end of a unix socket — what a caller cannot fake. Node has no
 * SO_PEERCRED, but the kernel answers a better question: when a process connects to a unix socket, the
 * socket that `accept()` hands the server is created in the *connecting* socket's network namespace. So
 * the server's end of a connection is listed in the unix socket table (`/proc/<pid>/net/unix`) of the
 * caller's netns, and of no other. A caller cannot place that socket elsewhere: it would have to be in
 * the other netns when it created its socket (which takes CAP_SYS_ADMIN over that netns — it would be
 * that pod's process then).
 *
 * Likewise the netns of a server is the one whose table lists a listening socket bound at its path.
 *
 * Needs root (reading other processes' `/proc` entries), which every nsm-ts server that programs the
 * kernel has. A lookup stats `/proc/*\/ns/net` and reads one unix table per network namespace; callers do
 * it once per connection (an HTTP/2 session carries many calls) and only when a check needs it.
 */
import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import type { Socket } from 'node:net';

/** The other end of a unix socket connection. */
export interface Peer {
  /** `inode://<dev>/<ino>` of the caller's network namespace. */
  readonly netns: string;
}

/** `inode://<dev>/<ino>` of the namespace file at `path`, or undefined when it cannot be read. */
async function nsIdentity(path: string): Promise<string | undefined> {
  const s = await stat(path, { bigint: true }).catch(() => undefined);
  return s ? `inode://${s.dev}/${s.ino}` : undefined;
}

/** `inode://<dev>/<ino>` of the network namespace of process `pid`, or undefined when it is gone. */
export function processNetns(pid: number | 'self'): Promise<string | undefined> {
  return nsIdentity(`/proc/${pid}/ns/net`);
}

/**
 * The `inode://<dev>/<ino>` identity of a netns URL as a client names it: `inode://` as it is, `file://`
 * by stat of the path (undefined when it does not exist); anything else is undefined.
 */
export function netnsIdentity(url: string): Promise<string | undefined> {
  const m = /^inode:\/\/(\d+)\/(\d+)$/.exec(url);
  if (m) return Promise.resolve(`inode://${m[1]}/${m[2]}`);
  if (url.startsWith('file:///')) return nsIdentity(decodeURIComponent(url.slice('file://'.length)));
  return Promise.resolve(undefined);
}

/** Inode of the socket behind file descriptor `fd` of this process. */
export async function socketInode(fd: number): Promise<number | undefined> {
  const link = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : undefined;
}

/** File descriptor of a connected unix socket (Node keeps it on the pipe handle). */
export function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** One process per network namespace on the machine (this process's own first), by netns identity. */
async function netnsRepresentatives(): Promise<Map<string, number | 'self'>> {
  const reps = new Map<string, number | 'self'>();
  const own = await processNetns('self');
  if (own) reps.set(own, 'self');
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
  const ids = await Promise.all(pids.map(async (p) => [await processNetns(Number(p)), Number(p)] as const));
  for (const [id, pid] of ids) if (id && !reps.has(id)) reps.set(id, pid);
  return reps;
}

interface UnixEntry {
  readonly inode: number;
  readonly listening: boolean;
  readonly path?: string;
}

/** The rows of a unix socket table (`/proc/<pid>/net/unix`): inode, whether it listens, bound path. */
export function parseUnixTable(text: string): UnixEntry[] {
  const out: UnixEntry[] = [];
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode [Path]
    const f = line.trim().split(/\s+/);
    if (f.length < 7) continue;
    const path = f.length > 7 ? f.slice(7).join(' ') : undefined;
    out.push({ inode: Number(f[6]), listening: (parseInt(f[3], 16) & 0x10000) !== 0, path });
  }
  return out;
}

/** A network namespace and one process in it (`self` when it is this process's own). */
export interface NetnsAndPid {
  readonly netns: string;
  readonly pid: number | 'self';
}

/** The netns whose unix socket table has a row matching `match` (with a process in it, and the row), or undefined. */
async function findInTables(match: (e: UnixEntry) => boolean): Promise<(NetnsAndPid & { readonly entry: UnixEntry }) | undefined> {
  for (const [netns, pid] of await netnsRepresentatives()) {
    const text = await readFile(`/proc/${pid}/net/unix`, 'utf8').catch(() => '');
    const entry = parseUnixTable(text).find(match);
    if (entry) return { netns, pid, entry };
  }
  return undefined;
}

/**
 * The netns of the socket with inode `inode` and a process in that netns (to look further into it, e.g.
 * its sock_diag table from inside — security/attest.ts), or undefined when no table lists it.
 */
export async function netnsOfSocket(inode: number): Promise<NetnsAndPid | undefined> {
  const found = await findInTables((e) => e.inode === inode);
  return found && { netns: found.netns, pid: found.pid };
}

/** The caller at the other end of the accepted unix socket behind `fd`: its network namespace. */
export async function peerOfFd(fd: number): Promise<Peer | undefined> {
  const inode = await socketInode(fd);
  if (inode === undefined) return undefined;
  const found = await netnsOfSocket(inode);
  return found ? { netns: found.netns } : undefined;
}

/** The network namespace of the server listening on the unix socket at `path`, or undefined if none. */
export async function listenerNetns(path: string): Promise<string | undefined> {
  if (!(await stat(path).catch(() => undefined))?.isSocket()) return undefined;
  return (await findInTables((e) => e.listening && e.path === path))?.netns;
}

/** The inode of the socket listening at `path`, in whichever netns it is bound, or undefined if none. */
export async function listenerInode(path: string): Promise<number | undefined> {
  return (await findInTables((e) => e.listening && e.path === path))?.entry.inode;
}

/** A file descriptor of a process: `/proc/<pid>/fd/<fd>`. */
export interface FdRef {
  readonly pid: number;
  readonly fd: string;
}

/** Every (pid, fd) of the machine whose fd is the socket with inode `inode`. */
export async function socketHolders(inode: number): Promise<FdRef[]> {
  const want = `socket:[${inode}]`;
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
  const found = await Promise.all(
    pids.map(async (p) => {
      const fds = await readdir(`/proc/${p}/fd`).catch(() => [] as string[]);
      const links = await Promise.all(fds.map(async (fd) => ((await readlink(`/proc/${p}/fd/${fd}`).catch(() => '')) === want ? fd : undefined)));
      return links.filter((fd): fd is string => fd !== undefined).map((fd) => ({ pid: Number(p), fd }));
    }),
  );
  return found.flat();
}
