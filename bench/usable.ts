/**
 * The Request-latency method, shared by request-latency.ts and scale.ts: a Request from the project's own
 * NSC chain (`startNsc`, what `nsm nsc` runs) in the bench process, timed until the interface is *usable*
 * (nsmgr serves a kernel interface only to a caller in that netns, so the in-process NSC reaches nsmgr
 * through a byte relay started inside the client netns before the clock starts:
 * `dist/test/fixtures/pod-proxy.js`; it adds a copy per message, well under a millisecond)
 * (in the client netns the link has UP+LOWER_UP and the connection's src address, and a ping to the
 * NSE's address is answered), and its baseline: the same kernel end state made by hand with two
 * `ip -batch` execs, followed by the same usable check.
 */
import { nscConfig, startNsc } from '../src/components/nsc/index.js';
import { createLogger } from '../src/core/log.js';
import type { Connection } from '../src/api/gen/connection.js';
import { networkServiceChain } from '../src/core/chain.js';
import { newContext } from '../src/core/context.js';
import { ChannelPool } from '../src/core/transport.js';
import type { Identity } from '../src/security/identity.js';
import { authorizeClient } from '../src/networkservice/authorize/index.js';
import { beginClient } from '../src/networkservice/begin/client.js';
import { clientUrl } from '../src/networkservice/client-url/index.js';
import { connectServer } from '../src/networkservice/connect/index.js';
import { kernelMechanismClient } from '../src/networkservice/mechanisms/kernel/index.js';
import { updatePathClient } from '../src/networkservice/update-path/index.js';
import { sampleIdentity } from './secure.js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { readdirSync, readlinkSync } from 'node:fs';
import { addNs, CLK_TCK, delNs, descendants, execIn, linkView, ROOT, sleep, treeTicks, wallNow, type Mesh, type Ns } from './lib.js';

const POD_RELAY = join(ROOT, 'dist/test/fixtures/pod-proxy.js');

/** What a sample needs of a mesh: its dir (logs, relay sockets) and the nsmgr socket the client uses (one node's, in a mesh of nodes). */
export type NsmgrAt = Pick<Mesh, 'dir'> & { readonly sock: Pick<Mesh['sock'], 'nsmgr'> };

/** A relay to nsmgr's socket from inside `ns` (see the header); resolves with its socket URL and a stop. */
async function podRelay(mesh: NsmgrAt, ns: Ns): Promise<{ url: string; stop: () => Promise<void> }> {
  const listen = join(mesh.dir, `${ns.name}.sock`);
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, POD_RELAY, listen, mesh.sock.nsmgr.replace(/^unix:\/\//, '')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`pod relay in ${ns.name} exited (${code})`)));
  });
  return { url: `unix://${listen}`, stop: async () => (child.kill('SIGTERM'), await exited) };
}

const bare = (cidr: string) => cidr.split('/')[0]!;

/** One usable check: link UP+LOWER_UP with `addr`, then a ping to `dst` answered. */
export async function usableOnce(ns: Ns, dev: string, addr: string, dst: string): Promise<boolean> {
  const v = await linkView(ns, dev);
  if (!v || !v.flags.includes('UP') || !v.flags.includes('LOWER_UP')) return false;
  if (!v.addr_info.some((a) => `${a.local}/${a.prefixlen}` === addr)) return false;
  try {
    await execIn(ns.path, ['ping', '-n', '-q', '-c', '1', '-i', '0.01', '-w', '2', dst]);
    return true;
  } catch {
    return false;
  }
}

/** Polls until usable; returns the number of failed checks before success. */
export async function waitUsable(ns: Ns, dev: string, addr: string, dst: string, timeoutMs = 10_000): Promise<number> {
  const until = Date.now() + timeoutMs;
  for (let failed = 0; ; failed++) {
    if (await usableOnce(ns, dev, addr, dst)) return failed;
    if (Date.now() > until) throw new Error(`${ns.name}: ${dev} not usable after ${timeoutMs} ms (addr ${addr}, ping ${dst})`);
    await sleep(2);
  }
}

export interface Sample {
  connected: number;
  usable: number;
  verify: number;
  notReadyAtReturn: boolean;
  /** The first refresh (re-Request of the established connection) on a new channel (ms); absent without refreshes. */
  firstRefresh?: number;
  /** Each later refresh on that same channel (ms). */
  refreshes: number[];
  /** During the later refreshes, when asked: CPU (ms) of each `cpuPids` tree and of this process, and the sockets each tree opened. */
  refreshCpu?: RefreshCpu;
}

export interface RefreshCpu {
  /** CPU ms of each of `cpuPids` (with descendants), in order. */
  readonly perPid: number[];
  /** CPU ms of this process (the NSC side). */
  readonly self: number;
  /** Sockets held at the end of the window that were not at its start, per pid (a new connection, hence a handshake, shows here). */
  readonly newSockets: number[];
}

/** Inodes of the sockets a process tree holds (/proc/<pid>/fd → `socket:[inode]`). */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>();
  for (const p of [pid, ...descendants(pid)]) {
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const l = readlinkSync(`/proc/${p}/fd/${fd}`);
        if (l.startsWith('socket:')) out.add(l);
      } catch {
        // closed meanwhile
      }
    }
  }
  return out;
}

/** The most refreshes one sample times. */
export const MAX_REFRESHES = 500;

export interface SampleOptions {
  /** mTLS and ES256 tokens (an SVID `spiffe://nsm.bench/nsc/nscb-<i>`, made before the clock starts) instead of NSM_INSECURE. */
  readonly secure?: boolean;
  /** Refreshes of the established connection to time after it is usable (0…MAX_REFRESHES; default 0). */
  readonly refreshes?: number;
  readonly timeoutMs?: number;
  /** Processes whose CPU (with their descendants) to add up over the later refreshes (e.g. the mesh's). */
  readonly cpuPids?: readonly number[];
}

/**
 * Re-Requests `conn` `1 + n` times as the NSC's refresh does (update-path with the NSC's identity and name,
 * begin, kernel mechanism, authorize, connect to `url`), one channel for all: the first includes dialling
 * (and the TLS handshake when secure), the later ones show the cost of a refresh on an established channel.
 */
async function timeRefreshes(
  conn: Connection, n: number, identity: Identity, at: { name: string; url: string; netnsUrl: string; cpuPids?: readonly number[] },
): Promise<{ first: number; rest: number[]; cpu?: RefreshCpu }> {
  const { name, url, netnsUrl } = at;
  const pool = new ChannelPool(identity.security);
  const chain = networkServiceChain('bench-refresh', [
    updatePathClient({ name }),
    beginClient({}, {}),
    kernelMechanismClient({ inodeUrl: netnsUrl }),
    authorizeClient({ pool }, { insecure: identity.insecure }),
    clientUrl(url),
    connectServer({ pool, tokens: identity.tokens }),
  ]);
  try {
    const times: number[] = [];
    let current = conn;
    const pids = at.cpuPids ?? [];
    let ticks0: number[] = [];
    let sockets0: Array<Set<string>> = [];
    let self0 = process.cpuUsage();
    for (let k = 0; k <= n; k++) {
      if (k === 1) [ticks0, sockets0, self0] = [pids.map(treeTicks), pids.map(socketInodes), process.cpuUsage()];
      const t0 = wallNow();
      current = await chain.request({ connection: current, mechanismPreferences: [] }, newContext({ deadline: Date.now() + 15_000 }));
      times.push(wallNow() - t0);
    }
    const self = process.cpuUsage(self0);
    const cpu = pids.length && n > 0
      ? {
          perPid: pids.map((p, i) => ((treeTicks(p) - ticks0[i]!) / CLK_TCK) * 1000),
          self: (self.user + self.system) / 1000,
          newSockets: pids.map((p, i) => [...socketInodes(p)].filter((x) => !sockets0[i]!.has(x)).length),
        }
      : undefined;
    return { first: times[0]!, rest: times.slice(1), cpu };
  } finally {
    pool.close();
  }
}

/**
 * One Request of `service` (an NSURL) from a fresh client netns, timed to usable; then Close and netns
 * deletion (not timed). Rejects when not connected within `timeoutMs`.
 */
export async function nscSample(mesh: NsmgrAt, i: number, logStream: NodeJS.WritableStream, service: string, opts: SampleOptions = {}): Promise<Sample> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const ns = await addNs('c');
  const relay = await podRelay(mesh, ns);
  const name = `nscb-${i}`;
  const config = nscConfig.parse({
    NSM_INSECURE: opts.secure ? 'false' : 'true',
    ...(opts.secure ? { SPIFFE_ENDPOINT_SOCKET: `unix://${join(mesh.dir, 'in-process-identity.sock')}` } : {}),
    NSM_NAME: name,
    NSM_CONNECT_TO: relay.url,
    NSM_NETWORK_SERVICES: service,
    NSM_LIVENESS_CHECK_ENABLED: 'false',
  });
  const log = createLogger(name, 'warn', logStream);
  // The identity is there before the clock starts (the socket above is never asked: deps.identity wins).
  const identity = sampleIdentity(opts.secure === true, `nsc/${name}`, log);
  let nsc: Awaited<ReturnType<typeof startNsc>> | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    const t0 = wallNow();
    nsc = await startNsc(config, { log, netnsUrl: ns.inodeUrl, identity });
    const timeout = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`not connected in ${Math.round(timeoutMs)} ms`)), timeoutMs)));
    const [conn] = (await Promise.race([nsc.connected, timeout])) as [Connection];
    const t1 = wallNow();
    const src = conn.context?.ipContext?.srcIpAddrs[0];
    const dst = conn.context?.ipContext?.dstIpAddrs[0];
    if (!src || !dst) throw new Error(`connection without addresses: ${JSON.stringify(conn.context?.ipContext)}`);
    const dev = /\/([^/?]+)(\?|$)/.exec(service.replace(/^kernel:\/\//, ''))?.[1] ?? 'nsm-1';
    const failed = await waitUsable(ns, dev, src, bare(dst));
    const t2 = wallNow();
    await waitUsable(ns, dev, src, bare(dst));
    const verify = wallNow() - t2;
    const r = opts.refreshes ? await timeRefreshes(conn, Math.min(MAX_REFRESHES, opts.refreshes), identity, { name, url: relay.url, netnsUrl: ns.inodeUrl, cpuPids: opts.cpuPids }) : undefined;
    return { connected: t1 - t0, usable: t2 - t0, verify, notReadyAtReturn: failed > 0, firstRefresh: r?.first, refreshes: r?.rest ?? [], refreshCpu: r?.cpu };
  } finally {
    clearTimeout(timer);
    await nsc?.stop();
    identity.stop();
    await relay.stop();
    await delNs(ns);
  }
}

/** Two `ip -batch` execs: veth `dev` in `a` with its peer `peer` in `b`, one address and one link route per end. */
export async function rawPair(a: Ns, b: Ns, dev: string, peer: string, aAddr: string, bAddr: string): Promise<void> {
  await execIn(a.path, ['ip', '-batch', '-'], `link add ${dev} type veth peer name ${peer} netns ${b.path}\naddr add ${aAddr}/32 dev ${dev}\nlink set dev ${dev} up\nroute replace ${bAddr}/32 dev ${dev} scope link\n`);
  await execIn(b.path, ['ip', '-batch', '-'], `addr add ${bAddr}/32 dev ${peer}\nlink set dev ${peer} up\nroute replace ${aAddr}/32 dev ${peer} scope link\n`);
}

/**
 * Baseline of one Request: the raw pair from a fresh netns into `b` (default: a fresh one too; pass the
 * NSE's netns to measure it next to the interfaces that exist there) + the usable check. `k` makes the
 * names and addresses unique (10.81.0.0/16).
 */
export async function rawSample(k: number, b?: Ns): Promise<{ create: number; usable: number }> {
  const a = await addNs('ra');
  const bb = b ?? (await addNs('rb'));
  const aAddr = `10.81.${Math.floor(k / 128) % 256}.${(k % 128) * 2 + 1}`;
  const bAddr = `10.81.${Math.floor(k / 128) % 256}.${(k % 128) * 2}`;
  try {
    const t0 = wallNow();
    await rawPair(a, bb, 'nsm-1', `raw-${k}`, aAddr, bAddr);
    const t1 = wallNow();
    await waitUsable(a, 'nsm-1', `${aAddr}/32`, bAddr);
    return { create: t1 - t0, usable: wallNow() - t0 };
  } finally {
    await delNs(a);
    if (!b) await delNs(bb);
  }
}
