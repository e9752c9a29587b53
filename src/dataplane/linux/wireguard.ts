/**
 * Userspace WireGuard for the Linux data plane: this kernel has no wireguard module, so each WireGuard
 * end is a `wireguard-go` process in the tunnel netns (where its UDP socket lives) serving a tun device
 * that is then moved into the pod. This file starts the process, talks to it over its UAPI socket
 * (`/var/run/wireguard/<name>.sock`, the cross-platform `set=1` / `get=1` text protocol, written with
 * node:net — no `wg` binary), finds its pid from the socket's holder (the daemon is not our child) and
 * makes sure it is gone after its device was deleted. Every exchange is bounded by a timeout and takes a
 * signal. A tun device dies with its process and the process exits when its device is deleted, so the
 * device is the thing to delete; the pid is only checked, and killed only when it outlives its device.
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { readFile, readdir, readlink, rm, stat } from 'node:fs/promises';
import { DataplaneError, errorMessage } from '../../core/errors.js';
import { listenerInode, socketHolders } from '../../core/peer.js';
import { linkSignals, sleep } from '../../core/signals.js';
import { endpointOf, keyB64, keyHex, type WantWireguard } from '../tunnel-spec.js';
import type { NetnsPath } from './ip.js';

export const WIREGUARD_SOCKET_DIR = '/var/run/wireguard';
/** Longest a UAPI exchange or the start of wireguard-go may take. */
export const WIREGUARD_TIMEOUT_MS = 10_000;
/** Longest wireguard-go may take to exit once its device is gone, before it is killed. */
export const WIREGUARD_EXIT_MS = 3_000;
/** Most bytes a UAPI answer may have (a `get=1` of one peer is ~600). */
const MAX_ANSWER = 64 * 1024;
/** WireGuard's persistent keepalive (upstream: 10 s). */
export const KEEPALIVE_S = 10;
/** errno of a listen port in use. */
const EADDRINUSE = 98;

export function socketPath(dev: string): string {
  return `${WIREGUARD_SOCKET_DIR}/${dev}.sock`;
}

/** A UAPI `set=1` answered errno ≠ 0. */
export class UapiError extends Error {
  override name = 'UapiError';
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

/** One UAPI exchange: writes `request` (ending in a blank line), returns the answer without its `errno=0` line. */
export async function uapi(dev: string, request: string, signal?: AbortSignal): Promise<string> {
  const linked = linkSignals([signal], WIREGUARD_TIMEOUT_MS);
  try {
    return await new Promise<string>((resolve, reject) => {
      const s = connect(socketPath(dev));
      let buf = '';
      const fail = (e: Error) => {
        s.destroy();
        reject(e);
      };
      const onAbort = () => fail(new DataplaneError('wireguard uapi', `${socketPath(dev)}: no answer (cancelled or timed out)`));
      if (linked.signal.aborted) return onAbort();
      linked.signal.addEventListener('abort', onAbort, { once: true });
      s.setEncoding('utf8');
      s.on('error', (e) => fail(new DataplaneError('wireguard uapi', `${socketPath(dev)}: ${e.message}`, { cause: e })));
      s.on('close', () => fail(new DataplaneError('wireguard uapi', `${socketPath(dev)}: closed before answering`)));
      s.on('data', (d: string) => {
        buf += d;
        if (buf.length > MAX_ANSWER) return fail(new DataplaneError('wireguard uapi', `${socketPath(dev)}: answer longer than ${MAX_ANSWER} bytes`));
        const m = /(?:^|\n)errno=(-?\d+)\n\n$/.exec(buf);
        if (!m) return;
        linked.signal.removeEventListener('abort', onAbort);
        s.removeAllListeners('close');
        s.end();
        const errno = Math.abs(Number(m[1]));
        if (errno !== 0) reject(new UapiError(errno, `${socketPath(dev)}: errno=${errno}`));
        else resolve(buf.slice(0, m.index));
      });
      s.write(request);
    });
  } finally {
    linked.dispose();
  }
}

/** What `get=1` says of a device (keys in base64). */
export interface WgConfig {
  privateKey?: string;
  listenPort?: number;
  peers: Array<{ publicKey: string; endpoint?: string; allowedIps: string[]; keepalive?: number }>;
}

export function parseGet(text: string): WgConfig {
  const cfg: WgConfig = { peers: [] };
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i <= 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    const peer = cfg.peers[cfg.peers.length - 1];
    if (k === 'private_key') cfg.privateKey = keyB64(v);
    else if (k === 'listen_port') cfg.listenPort = Number(v);
    else if (k === 'public_key') cfg.peers.push({ publicKey: keyB64(v), allowedIps: [] });
    else if (k === 'endpoint' && peer) peer.endpoint = v;
    else if (k === 'allowed_ip' && peer) peer.allowedIps.push(v);
    else if (k === 'persistent_keepalive_interval' && peer) peer.keepalive = Number(v);
  }
  return cfg;
}

/** What differs between a device's config and the wanted one, as action names; empty when converged. */
export function wgDiff(have: WgConfig, want: WantWireguard): string[] {
  const out: string[] = [];
  if (have.privateKey !== want.privateKey) out.push('set wireguard private key');
  if (have.listenPort !== want.listenPort) out.push(`set wireguard listen port ${want.listenPort}`);
  const p = have.peers;
  const ok =
    p.length === 1 &&
    p[0]!.publicKey === want.peerPublicKey &&
    p[0]!.endpoint === endpointOf(want.remoteIp, want.remotePort) &&
    p[0]!.keepalive === KEEPALIVE_S &&
    [...p[0]!.allowedIps].sort().join(',') === '0.0.0.0/0,::/0';
  if (!ok) out.push(`set wireguard peer ${endpointOf(want.remoteIp, want.remotePort)}`);
  return out;
}

/**
 * The `set=1` request that takes a device from `have` to `want` (everything when `have` is undefined).
 * A peer whose key stays is updated in place (endpoint, allowed IPs, keepalive), so its session survives;
 * a new peer key replaces the peers.
 */
export function setRequest(want: WantWireguard, have?: WgConfig): string {
  const keep = have?.peers.length === 1 && have.peers[0]!.publicKey === want.peerPublicKey;
  return [
    'set=1',
    ...(have?.privateKey !== want.privateKey ? [`private_key=${keyHex(want.privateKey)}`] : []),
    ...(have?.listenPort !== want.listenPort ? [`listen_port=${want.listenPort}`] : []),
    ...(keep ? [] : ['replace_peers=true']),
    `public_key=${keyHex(want.peerPublicKey)}`,
    `endpoint=${endpointOf(want.remoteIp, want.remotePort)}`,
    'replace_allowed_ips=true',
    'allowed_ip=0.0.0.0/0',
    'allowed_ip=::/0',
    `persistent_keepalive_interval=${KEEPALIVE_S}`,
    '',
    '',
  ].join('\n');
}

/** The UDP sockets bound in the netns of process `pid` (its `/proc/<pid>/net/udp` and `udp6` tables): port → socket inodes. */
export async function udpSocketsOf(pid: number): Promise<Map<number, number[]>> {
  const out = new Map<number, number[]>();
  for (const table of ['udp', 'udp6']) {
    const text = await readFile(`/proc/${pid}/net/${table}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = f[1];
      if (!local || f[9] === undefined) continue;
      const port = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
      out.set(port, [...(out.get(port) ?? []), Number(f[9])]);
    }
  }
  return out;
}

/** The socket inodes among process `pid`'s open files. */
async function socketsOfPid(pid: number): Promise<Set<number>> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return new Set(links.map((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1]).filter((x): x is string => x !== undefined).map(Number));
}

/**
 * Refuses a listen port already bound in the tunnel netns by another process than wireguard-go `pid`
 * (seen from its netns). wireguard-go binds when it handles its device's up event, and a port in use
 * found then is only logged: so look before, and `awaitListenPort` after.
 */
export async function checkListenPort(pid: number | undefined, port: number): Promise<void> {
  if (pid === undefined) return;
  const [bound, mine] = await Promise.all([udpSocketsOf(pid), socketsOfPid(pid)]);
  if ((bound.get(port) ?? []).some((ino) => !mine.has(ino))) throw portInUse(port);
}

/** Waits (bounded) until wireguard-go `pid` holds a UDP socket on `port`; an error naming the port if it never does. */
export async function awaitListenPort(pid: number | undefined, port: number, signal?: AbortSignal): Promise<void> {
  if (pid === undefined) return;
  const deadline = Date.now() + WIREGUARD_EXIT_MS;
  for (;;) {
    const [bound, mine] = await Promise.all([udpSocketsOf(pid), socketsOfPid(pid)]);
    const socks = bound.get(port) ?? [];
    if (socks.some((ino) => mine.has(ino))) return;
    if (socks.length > 0 || Date.now() > deadline) throw portInUse(port);
    await sleep(20, signal);
  }
}

function portInUse(port: number, cause?: unknown): DataplaneError {
  return new DataplaneError('set wireguard listen port', `UDP port ${port} is already in use in the tunnel netns (WireGuard listen port)`, cause ? { cause } : undefined);
}

/** Configures the device `dev` to `want` (from `have`, its config now, if known); a listen port in use is an error naming the port. */
export async function configure(dev: string, want: WantWireguard, signal?: AbortSignal, have?: WgConfig): Promise<void> {
  try {
    await uapi(dev, setRequest(want, have), signal);
  } catch (err) {
    if (err instanceof UapiError && err.errno === EADDRINUSE) throw portInUse(want.listenPort, err);
    throw err instanceof UapiError ? new DataplaneError('configure wireguard', err.message, { cause: err }) : err;
  }
}

/** The device's config, or undefined when no process answers on its socket. */
export async function readConfig(dev: string, signal?: AbortSignal): Promise<WgConfig | undefined> {
  if (!(await stat(socketPath(dev)).catch(() => undefined))?.isSocket()) return undefined;
  try {
    return parseGet(await uapi(dev, 'get=1\n\n', signal));
  } catch (err) {
    if (signal?.aborted) throw err;
    return undefined;
  }
}

/**
 * Starts `wireguard-go <dev>` in the netns at `path`. It daemonizes: the process we spawn exits 0 once the
 * device and its socket exist; the daemon runs on in its own session (we spawn it detached).
 */
export async function startWireguardGo(path: NetnsPath, dev: string, bin = 'wireguard-go', nsenterBin = 'nsenter', signal?: AbortSignal): Promise<void> {
  const linked = linkSignals([signal], WIREGUARD_TIMEOUT_MS);
  try {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(nsenterBin, [`--net=${path === 'self' ? '/proc/self/ns/net' : path}`, bin, dev], {
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true,
        env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: '1' },
      });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (d: string) => (stderr = (stderr + d).slice(-2000)));
      const onAbort = () => child.kill('SIGKILL');
      linked.signal.addEventListener('abort', onAbort, { once: true });
      child.on('error', (e) => reject(new DataplaneError('start wireguard-go', `cannot run ${bin}: ${e.message}`, { cause: e })));
      child.on('close', (code) => {
        linked.signal.removeEventListener('abort', onAbort);
        resolve({ code, stderr });
      });
    });
    if (r.code !== 0) {
      const why = linked.signal.aborted ? 'cancelled or timed out' : `exit ${r.code}: ${r.stderr.split('\n').filter((l) => l && !/[│┌└]/.test(l)).join('; ')}`;
      throw new DataplaneError('start wireguard-go', `${bin} ${dev} in netns ${path}: ${why}`);
    }
  } finally {
    linked.dispose();
  }
}

/** The pid of the process serving `dev`'s UAPI socket (the socket's listener's holder), if any. */
export async function wireguardPid(dev: string): Promise<number | undefined> {
  if (!(await stat(socketPath(dev)).catch(() => undefined))?.isSocket()) return undefined; // the cheap answer first
  const inode = await listenerInode(socketPath(dev));
  if (inode === undefined) return undefined;
  const holders = await socketHolders(inode);
  return holders[0]?.pid;
}

/** Whether `pid` is a running process (not gone, not a zombie waiting to be reaped). */
export async function running(pid: number): Promise<boolean> {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (!s) return false;
  const state = s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/**
 * After `dev`'s device was deleted: waits for `pid` (found from the socket before) to exit, kills it if
 * it outlives WIREGUARD_EXIT_MS, and removes the socket file if it is left. Returns what it had to do.
 */
export async function reapWireguardGo(dev: string, pid: number | undefined): Promise<string[]> {
  const actions: string[] = [];
  if (pid !== undefined) {
    const deadline = Date.now() + WIREGUARD_EXIT_MS;
    while ((await running(pid)) && Date.now() < deadline) await sleep(20);
    if (await running(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
        actions.push(`kill wireguard-go ${pid}`);
      } catch (err) {
        throw new DataplaneError('stop wireguard-go', `pid ${pid} (${dev}): ${errorMessage(err)}`);
      }
    }
  }
  if (await stat(socketPath(dev)).catch(() => undefined)) {
    const still = await wireguardPid(dev);
    if (still !== undefined && (await running(still))) throw new DataplaneError('stop wireguard-go', `${socketPath(dev)} is still served by pid ${still}`);
    await rm(socketPath(dev), { force: true });
    actions.push(`remove socket ${socketPath(dev)}`);
  }
  return actions;
}
