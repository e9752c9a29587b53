/**
 * Nodes of the one-host mesh (`nsm up --nodes N`): each node is a network namespace with its own nsmgr and
 * forwarder, joined to the others by an underlay the mesh creates — a bridge in an underlay netns, one veth
 * per node — and never anything in the host netns (no address, route or link there).
 *
 * Names. A host may run several meshes (one per run dir), so the netns of a mesh carry a tag derived from
 * its run dir: `nsm<6 hex of sha256(run dir)>`, e.g. `nsm3fa2c1-node-1` … `nsm3fa2c1-node-N` and
 * `nsm3fa2c1-ul` (the underlay). Links live inside those netns, so their names are fixed: `br0` (the
 * bridge, in the underlay netns), `n<i>` (the bridge's port for node i) and `ul0` (the node's end). The node
 * names the mesh shows (NODE_NAME, `nsm run --node`, SPIFFE IDs `node/<node>/<component>`) are the plain
 * `node-1` … `node-N`. `br0` and every `ul0` carry the alias `nsm-mesh:{"run":<run dir>,"nsm":<program>}` so
 * a leak check can tell whose mesh a netns is (not `nsm-ts:`, which marks a connection's links).
 *
 * Addresses: node i gets the i-th address of the underlay CIDR (default {@link DEFAULT_UNDERLAY_CIDR}).
 * The veth ends have TX checksum offload off (`ethtool -K … tx off`), the usual cure for kernel VXLAN over
 * veth dropping packets. The planning is pure (table-tested); `createTopology` and `destroyTopology` do the
 * kernel work and `createTopology` rolls back what it made when a step fails.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { containsCidr, formatIp, nthAddress, overlaps, tryParseCidr, type Cidr } from '../api/cidr.js';
import { DataplaneError, InvalidArgumentError } from '../core/errors.js';
import { addNetns, deleteNetns, ip, netnsExists, netnsInode } from './netns.js';
import { socketOwner } from './proc.js';

export const MIN_NODES = 1;
export const MAX_NODES = 8;
/** A private /24 the host does not route (checked at `nsm up`). */
export const DEFAULT_UNDERLAY_CIDR = '10.250.0.0/24';
/** Bounds of the underlay prefix length: a /16 at most, a /28 (14 hosts ≥ MAX_NODES) at least. */
export const UNDERLAY_PREFIX_MIN = 16;
export const UNDERLAY_PREFIX_MAX = 28;
/** Upstream's ports: nsmgr serves on 5001, registry-memory on 5002. */
export const NSMGR_TCP_PORT = 5001;
export const REGISTRY_TCP_PORT = 5002;
export const UNDERLAY_BRIDGE = 'br0';
export const NODE_UNDERLAY_IF = 'ul0';
export const INFRA_ALIAS_PREFIX = 'nsm-mesh:';
/** Kernel ifalias limit (IFALIASZ - 1). */
const MAX_ALIAS_BYTES = 255;

const PRIVATE_V4 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];
/** The names of a mesh's infrastructure netns: `nsm<tag>-node-<i>` and `nsm<tag>-ul`. */
export const INFRA_NETNS_RE = /^nsm[0-9a-f]{6}-(node-[1-9][0-9]*|ul)$/;

export interface NodeSpec {
  /** `node-<i>`: NODE_NAME, `nsm run --node`, the `<node>` of SPIFFE IDs. */
  readonly name: string;
  readonly netns: string;
  /** Underlay address (NSM_TUNNEL_IP of its forwarder). */
  readonly address: string;
  /** `address/prefix`, as set on `ul0`. */
  readonly addressCidr: string;
  /** The bridge's port for this node, in the underlay netns. */
  readonly bridgePort: string;
}

export interface Topology {
  /** `nsm<6 hex>`, from the run dir. */
  readonly tag: string;
  /** The underlay network, canonical (`10.250.0.0/24`). */
  readonly cidr: string;
  readonly underlayNetns: string;
  readonly bridge: string;
  readonly nodes: readonly NodeSpec[];
}

/** `--nodes`: a whole number in [MIN_NODES, MAX_NODES]. */
export function parseNodeCount(raw: string | number): number {
  const s = String(raw).trim();
  const n = /^[0-9]+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < MIN_NODES || n > MAX_NODES) throw new InvalidArgumentError('--nodes', raw, `expected a whole number from ${MIN_NODES} to ${MAX_NODES}`);
  return n;
}

/** `--underlay-cidr`: a private IPv4 network (host bits zero) of prefix /16../28 with room for `nodes` addresses. */
export function parseUnderlayCidr(raw: string, nodes: number): Cidr {
  const c = tryParseCidr(raw.trim());
  const bad = (reason: string) => new InvalidArgumentError('--underlay-cidr', raw, reason);
  if (!c) throw bad('not a CIDR (expected e.g. 10.250.0.0/24)');
  if (c.family !== 4) throw bad('the underlay is IPv4 (VXLAN and WireGuard endpoints of the kernel forwarder)');
  if (c.ip !== c.network) throw bad(`host bits are set; the network is ${formatIp(c.network, 4)}/${c.prefix}`);
  if (c.prefix < UNDERLAY_PREFIX_MIN || c.prefix > UNDERLAY_PREFIX_MAX) throw bad(`prefix must be /${UNDERLAY_PREFIX_MIN} to /${UNDERLAY_PREFIX_MAX}`);
  const net = `${formatIp(c.network, 4)}/${c.prefix}`;
  if (!PRIVATE_V4.some((p) => containsCidr(p, net))) {
    throw bad(`not a private network (use one inside ${PRIVATE_V4.join(', ')})`);
  }
  const hosts = 2 ** (32 - c.prefix) - 2;
  if (hosts < nodes) throw bad(`has ${hosts} host addresses, fewer than ${nodes} nodes`);
  return c;
}

/** The tag of the run dir's netns names: `nsm` + the first 6 hex digits of sha256(run dir). */
export function meshTag(runDir: string): string {
  return `nsm${createHash('sha256').update(runDir).digest('hex').slice(0, 6)}`;
}

export const nodeName = (i: number): string => `node-${i}`;

/** The whole layout of a mesh of `nodes` nodes in `runDir`, from its underlay CIDR. Pure. */
export function planTopology(runDir: string, nodes: number, cidr: string = DEFAULT_UNDERLAY_CIDR): Topology {
  const n = parseNodeCount(nodes);
  const c = parseUnderlayCidr(cidr, n);
  const tag = meshTag(runDir);
  const net = `${formatIp(c.network, 4)}/${c.prefix}`;
  const list: NodeSpec[] = [];
  for (let i = 1; i <= n; i++) {
    const address = formatIp(nthAddress(net, i));
    list.push({ name: nodeName(i), netns: `${tag}-${nodeName(i)}`, address, addressCidr: `${address}/${c.prefix}`, bridgePort: `n${i}` });
  }
  return Object.freeze({ tag, cidr: net, underlayNetns: `${tag}-ul`, bridge: UNDERLAY_BRIDGE, nodes: Object.freeze(list) });
}

/** Every netns of the topology: the nodes', then the underlay's. */
export function topologyNetns(t: Topology): string[] {
  return [...t.nodes.map((n) => n.netns), t.underlayNetns];
}

/** The alias of the underlay's links: whose mesh it is (run dir, and the `nsm` program when it fits). */
export function infraAlias(runDir: string, entry: string): string {
  const full = `${INFRA_ALIAS_PREFIX}${JSON.stringify({ run: runDir, nsm: entry })}`;
  return Buffer.byteLength(full) <= MAX_ALIAS_BYTES ? full : `${INFRA_ALIAS_PREFIX}${JSON.stringify({ run: runDir })}`.slice(0, MAX_ALIAS_BYTES);
}

export interface HostAddr {
  readonly ifname: string;
  readonly local: string;
  readonly prefixlen: number;
}
export interface HostRoute {
  readonly dst: string;
  readonly dev?: string;
  readonly type?: string;
}

/** Why the host netns uses `cidr` (an IPv4 address or route of its overlaps it), or undefined. Pure. */
export function hostConflict(cidr: string, addrs: readonly HostAddr[], routes: readonly HostRoute[]): string | undefined {
  for (const a of addrs) {
    if (!a.local.startsWith('127.') && overlaps(cidr, `${a.local}/${a.prefixlen}`)) return `overlaps ${a.local}/${a.prefixlen} of ${a.ifname} in the host netns`;
  }
  for (const r of routes) {
    if (r.dst === 'default' || r.type === 'broadcast' || r.type === 'local' || r.dst.startsWith('127.')) continue;
    const dst = r.dst.includes('/') ? r.dst : `${r.dst}/32`;
    if (tryParseCidr(dst)?.family === 4 && overlaps(cidr, dst)) return `overlaps the host route ${r.dst}${r.dev ? ` dev ${r.dev}` : ''}`;
  }
  return undefined;
}

/** Refuses an underlay CIDR the host netns uses (reads its IPv4 addresses and routes, all tables). */
export async function checkHostFree(cidr: string): Promise<void> {
  const links = JSON.parse(await ip(['-j', '-4', 'addr', 'show'])) as Array<{ ifname: string; addr_info?: Array<{ local: string; prefixlen: number }> }>;
  const addrs = links.flatMap((l) => (l.addr_info ?? []).map((a) => ({ ifname: l.ifname, local: a.local, prefixlen: a.prefixlen })));
  const routes = JSON.parse(await ip(['-j', '-4', 'route', 'show', 'table', 'all'])) as HostRoute[];
  const why = hostConflict(cidr, addrs, routes);
  if (why) throw new InvalidArgumentError('--underlay-cidr', cidr, `${why}; choose a network the host does not use`);
}

const run = promisify(execFile);

/** `ethtool -K <dev> tx off` inside `netns`. */
async function txOffloadOff(netns: string, dev: string): Promise<void> {
  try {
    await run('ip', ['netns', 'exec', netns, 'ethtool', '-K', dev, 'tx', 'off'], { timeout: 10_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new DataplaneError(`ip netns exec ${netns} ethtool -K ${dev} tx off`, (e.stderr ?? e.message).trim(), { cause: err });
  }
}

/** Creates the underlay netns and bridge, then each node's netns, veth, address and offload setting. Rolls back on failure. */
export async function createTopology(t: Topology, alias: string): Promise<void> {
  const made: string[] = [];
  try {
    await addNetns(t.underlayNetns);
    made.push(t.underlayNetns);
    const u = ['-n', t.underlayNetns];
    await ip([...u, 'link', 'add', t.bridge, 'type', 'bridge']);
    await ip([...u, 'link', 'set', t.bridge, 'alias', alias]);
    await ip([...u, 'link', 'set', t.bridge, 'up']);
    for (const n of t.nodes) {
      await addNetns(n.netns);
      made.push(n.netns);
      // Both ends are created where they belong: the port in the underlay netns, its peer in the node's.
      await ip([...u, 'link', 'add', n.bridgePort, 'type', 'veth', 'peer', 'name', NODE_UNDERLAY_IF, 'netns', n.netns]);
      await ip([...u, 'link', 'set', n.bridgePort, 'master', t.bridge]);
      await ip(['-n', n.netns, 'link', 'set', NODE_UNDERLAY_IF, 'alias', alias]);
      await ip(['-n', n.netns, 'addr', 'add', n.addressCidr, 'dev', NODE_UNDERLAY_IF]);
      await txOffloadOff(t.underlayNetns, n.bridgePort);
      await txOffloadOff(n.netns, NODE_UNDERLAY_IF);
      await ip([...u, 'link', 'set', n.bridgePort, 'up']);
      await ip(['-n', n.netns, 'link', 'set', NODE_UNDERLAY_IF, 'up']);
    }
  } catch (err) {
    for (const ns of made.reverse()) await deleteNetns(ns).catch(() => undefined);
    throw err;
  }
}

/** Deletes the topology's netns (nodes first); the veths go with them. Returns the netns it deleted. */
export async function destroyTopology(t: Topology): Promise<string[]> {
  const deleted: string[] = [];
  for (const ns of topologyNetns(t)) {
    if (!netnsExists(ns)) continue;
    await deleteNetns(ns);
    deleted.push(ns);
  }
  return deleted;
}

/** Pids of the processes whose network namespace is one of the named netns (by inode). */
export function processesInNetns(names: readonly string[]): Array<{ pid: number; netns: string }> {
  const byIno = new Map<number, string>();
  for (const n of names) {
    const ino = netnsInode(n);
    if (ino !== undefined) byIno.set(ino, n);
  }
  if (byIno.size === 0) return [];
  const out: Array<{ pid: number; netns: string }> = [];
  for (const e of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const ns = byIno.get(statSync(`/proc/${e}/ns/net`).ino);
      if (ns) out.push({ pid: Number(e), netns: ns });
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Where wireguard-go keeps its UAPI sockets, and the prefix of the data plane's interface names. */
export const WIREGUARD_RUN_DIR = '/var/run/wireguard';
export const WIREGUARD_IF_PREFIX = 'nsmwg';

/** The data plane's wireguard-go UAPI sockets (`nsmwg*.sock`) whose listening process is one of `pids`. */
export async function wireguardSocketsOf(pids: ReadonlySet<number>): Promise<string[]> {
  if (pids.size === 0) return [];
  let names: string[];
  try {
    names = readdirSync(WIREGUARD_RUN_DIR).filter((n) => n.startsWith(WIREGUARD_IF_PREFIX) && n.endsWith('.sock'));
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const n of names) {
    const path = join(WIREGUARD_RUN_DIR, n);
    const owner = await socketOwner(path);
    if (owner && pids.has(owner.pid)) out.push(path);
  }
  return out;
}
