/**
 * What the kernel says about one netns (parsed from `ip -d -j` dumps), and the plan that converges one
 * end to its wanted state. Pure functions: `index.ts` does the I/O.
 */
import { createHash } from 'node:crypto';
import { familyBits, formatIp, tryParseCidr, tryParseIp, type IpFamily } from '../../api/cidr.js';
import { normAddr, type WantAddr, type WantEnd, type WantRoute } from '../spec.js';
import type { Side } from '../types.js';
import type { BatchLine } from './ip.js';

export interface KAddr {
  family: IpFamily;
  local: string;
  prefixlen: number;
  cidr: string;
  scope: string;
}

export interface KLink {
  ifindex: number;
  name: string;
  alias?: string;
  flags: string[];
  up: boolean;
  carrier: boolean;
  operstate: string;
  mtu: number;
  mac: string;
  kind?: string;
  /** For a veth: the peer's ifindex (in the peer's netns). */
  peerIfindex?: number;
  /** For a VXLAN device: its parameters as the kernel reports them. */
  vxlan?: KVxlan;
  addrs: KAddr[];
}

export interface KVxlan {
  vni: number;
  local?: string;
  remote?: string;
  port: number;
}

/** A VXLAN device's `info_data` (`ip -d -j`), IPs canonical. */
export function parseVxlan(data: J | undefined): KVxlan | undefined {
  if (!data || typeof data.id !== 'number') return undefined;
  const ip = (v: unknown) => (typeof v === 'string' ? tryParseIp(v) : undefined);
  const local = ip(data.local ?? data.local6);
  const remote = ip(data.remote ?? data.remote6 ?? data.group ?? data.group6);
  const out: KVxlan = { vni: data.id, port: typeof data.port === 'number' ? data.port : 0 };
  if (local) out.local = formatIp(local);
  if (remote) out.remote = formatIp(remote);
  return out;
}

export interface KRoute {
  family: IpFamily;
  /** Canonical prefix (`172.16.1.100/32`, `::/0`). */
  prefix: string;
  gateway?: string;
  dev?: string;
  protocol: string;
  scope: string;
  metric?: number;
  onlink: boolean;
}

export interface NetnsState {
  links: Map<string, KLink>;
  routes: KRoute[];
  pingGroupRange?: string;
}

/** The dumps of a whole netns (`inspect.ts` reads them), in this order. */
export const STATE_READ_LINES = ['addr show', 'route show table main', 'route show table all root ::/0'];

/** The same, for one device only (`read.ts` readEnd): its link and addresses, its IPv4 and IPv6 routes. */
export function endReadLines(name: string): string[] {
  return [`addr show dev ${name}`, `route show table main dev ${name}`, `route show table all root ::/0 dev ${name}`];
}

type J = Record<string, unknown>;

export function parseLinks(json: unknown): Map<string, KLink> {
  const links = new Map<string, KLink>();
  for (const l of (Array.isArray(json) ? json : []) as J[]) {
    const flags = (l.flags as string[] | undefined) ?? [];
    const addrs: KAddr[] = [];
    for (const a of (l.addr_info as J[] | undefined) ?? []) {
      const fam = a.family === 'inet' ? 4 : a.family === 'inet6' ? 6 : undefined;
      if (!fam || typeof a.local !== 'string') continue;
      const n = safeAddr(`${a.local}/${String(a.prefixlen)}`);
      if (n) addrs.push({ family: n.family, local: n.local, prefixlen: n.prefixlen, cidr: n.cidr, scope: String(a.scope ?? 'global') });
    }
    const info = l.linkinfo as J | undefined;
    const link: KLink = {
      ifindex: Number(l.ifindex),
      name: String(l.ifname),
      flags,
      up: flags.includes('UP'),
      carrier: flags.includes('LOWER_UP') && !flags.includes('NO-CARRIER'),
      operstate: String(l.operstate ?? 'UNKNOWN'),
      mtu: Number(l.mtu),
      mac: String(l.address ?? ''),
      addrs,
    };
    if (typeof l.ifalias === 'string') link.alias = l.ifalias;
    if (info && typeof info.info_kind === 'string') link.kind = info.info_kind;
    if (link.kind === 'vxlan') {
      const vx = parseVxlan(info?.info_data as J | undefined);
      if (vx) link.vxlan = vx;
    }
    if (typeof l.link_index === 'number') link.peerIfindex = l.link_index;
    links.set(link.name, link);
  }
  return links;
}

function safeAddr(s: string): WantAddr | undefined {
  try {
    return normAddr(s, 'kernel');
  } catch {
    return undefined;
  }
}

function routePrefix(dst: string, family: IpFamily): string | undefined {
  if (dst === 'default') return family === 4 ? '0.0.0.0/0' : '::/0';
  const c = tryParseCidr(dst.includes('/') ? dst : `${dst}/${familyBits(family)}`);
  return c && c.family === family ? `${formatIp(c.network, c.family)}/${c.prefix}` : undefined;
}

export function parseRoutes(json: unknown, family: IpFamily): KRoute[] {
  const out: KRoute[] = [];
  for (const r of (Array.isArray(json) ? json : []) as J[]) {
    if ((r.type ?? 'unicast') !== 'unicast') continue;
    if ((r.table ?? 'main') !== 'main') continue;
    const prefix = typeof r.dst === 'string' ? routePrefix(r.dst, family) : undefined;
    if (!prefix) continue;
    const gw = typeof r.gateway === 'string' ? tryParseIp(r.gateway) : undefined;
    const flags = (r.flags as string[] | undefined) ?? [];
    const route: KRoute = { family, prefix, protocol: String(r.protocol ?? 'boot'), scope: String(r.scope ?? 'global'), onlink: flags.includes('onlink') };
    if (gw) route.gateway = formatIp(gw);
    if (typeof r.dev === 'string') route.dev = r.dev;
    if (typeof r.metric === 'number') route.metric = r.metric;
    out.push(route);
  }
  return out;
}

export function parseState(json: unknown[], pingGroupRange?: string): NetnsState {
  const s: NetnsState = { links: parseLinks(json[0]), routes: [...parseRoutes(json[1], 4), ...parseRoutes(json[2], 6)] };
  if (pingGroupRange !== undefined) s.pingGroupRange = pingGroupRange;
  return s;
}

const DEFAULT_METRIC: Record<IpFamily, number> = { 4: 0, 6: 1024 };

/** Routes on `dev` that nsm-ts manages (everything but what the kernel derives from addresses). */
export function managedRoutes(s: NetnsState, dev: string): KRoute[] {
  return s.routes.filter((r) => r.dev === dev && r.protocol !== 'kernel');
}

function routeMatches(k: KRoute, w: WantRoute): boolean {
  if (k.prefix !== w.prefix || (k.metric ?? DEFAULT_METRIC[k.family]) !== DEFAULT_METRIC[w.family]) return false;
  if (w.via) return k.gateway === w.via && k.onlink;
  return k.gateway === undefined && (w.family === 6 || k.scope === 'link');
}

// ---- batch lines ----

export const L = {
  /** Creates `name` (MAC `mac`) here and its veth peer `peer` (MAC `peerMac`) directly in the netns at `peerPath`. */
  create: (name: string, peer: string, peerPath: string, mtu: number | undefined, mac: string, peerMac: string): BatchLine => {
    const m = mtu ? ` mtu ${mtu}` : '';
    return { step: 'create veth', cmd: `link add ${name}${m} address ${mac} type veth peer name ${peer}${m} address ${peerMac} netns ${peerPath}` };
  },
  /**
   * A permanent neighbour entry: the peer end's address resolves to its MAC without ARP. The kernel's
   * neighbour table is shared by every netns and its garbage collection is bounded (gc_thresh3, 1024 by
   * default); permanent entries are outside that bound, dynamic ones are not — at ~500 connections ARP
   * entries started being evicted and refused ("neighbor table overflow"), and replies were lost.
   */
  neigh: (name: string, ip: string, mac: string): BatchLine => ({ step: `set neighbour ${ip}`, cmd: `neigh replace ${ip} lladdr ${mac} dev ${name} nud permanent` }),
  /** Drops neighbour entries (e.g. an ARP entry left INCOMPLETE while the link had no carrier). */
  flushNeigh: (name: string): BatchLine => ({ step: 'flush neighbours', cmd: `neigh flush dev ${name}` }),
  alias: (name: string, alias: string): BatchLine => ({ step: 'set alias', cmd: `link set dev ${name} alias ${alias}` }),
  mtu: (name: string, mtu: number): BatchLine => ({ step: `set mtu ${mtu}`, cmd: `link set dev ${name} mtu ${mtu}` }),
  up: (name: string): BatchLine => ({ step: 'set up', cmd: `link set dev ${name} up` }),
  addAddr: (name: string, a: WantAddr): BatchLine => ({ step: `add address ${a.cidr}`, cmd: `addr replace ${a.cidr} dev ${name}${a.family === 6 ? ' nodad' : ''}` }),
  delAddr: (name: string, a: KAddr): BatchLine => ({ step: `remove address ${a.cidr}`, cmd: `addr del ${a.cidr} dev ${name}` }),
  route: (name: string, r: WantRoute): BatchLine =>
    r.via
      ? { step: `add route ${r.prefix} via ${r.via}`, cmd: `route replace ${r.prefix} via ${r.via} dev ${name} onlink` }
      : { step: `add route ${r.prefix}`, cmd: `route replace ${r.prefix} dev ${name}${r.family === 4 ? ' scope link' : ''}` },
  delRoute: (name: string, r: KRoute): BatchLine => ({
    step: `remove route ${r.prefix}${r.gateway ? ` via ${r.gateway}` : ''}`,
    cmd: `route del ${r.prefix} dev ${name}${r.metric !== undefined ? ` metric ${r.metric}` : ''}`,
  }),
  del: (name: string): BatchLine => ({ step: 'delete link', cmd: `link del dev ${name}` }),
  show: (name: string): BatchLine => ({ step: 'read link', cmd: `link show dev ${name}` }),
};

/** Permanent neighbour entries on end `w` for every address of the other end `peer`, whose MAC is `peerMac`. */
export function neighbourLines(w: WantEnd, peer: WantEnd, peerMac: string): BatchLine[] {
  return peerMac ? peer.addrs.map((a) => L.neigh(w.name, a.local, peerMac)) : [];
}

/**
 * The MAC of a connection's end: locally administered unicast, derived from the owner and side, so a
 * recreated link gets the same MAC back and neighbours' entries stay right.
 */
export function endMac(owner: string, side: Side): string {
  const h = createHash('sha256').update(`${owner}:${side}`).digest();
  return ['02', ...[...h.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** Lines that configure a just-created end (alias, addresses, up, routes), in kernel-friendly order. */
export function configureLines(w: WantEnd): BatchLine[] {
  return [L.alias(w.name, w.alias), ...w.addrs.map((a) => L.addAddr(w.name, a)), L.up(w.name), ...w.routes.map((r) => L.route(w.name, r))];
}

/** Lines that converge an existing end of ours to `w`; empty when converged. */
export function convergeLines(w: WantEnd, link: KLink, s: NetnsState, mtu?: number): BatchLine[] {
  const lines: BatchLine[] = [];
  if (mtu !== undefined && link.mtu !== mtu) lines.push(L.mtu(w.name, mtu));
  if (!link.up) lines.push(L.up(w.name));
  const want = new Set(w.addrs.map((a) => a.cidr));
  const have = new Set(link.addrs.map((a) => a.cidr));
  for (const a of link.addrs) if (a.scope !== 'link' && !want.has(a.cidr)) lines.push(L.delAddr(w.name, a));
  for (const a of w.addrs) if (!have.has(a.cidr)) lines.push(L.addAddr(w.name, a));
  const routes = managedRoutes(s, w.name);
  const wantedPrefixes = new Set(w.routes.map((r) => `${r.prefix}|${DEFAULT_METRIC[r.family]}`));
  for (const k of routes) {
    if (!wantedPrefixes.has(`${k.prefix}|${k.metric ?? DEFAULT_METRIC[k.family]}`)) lines.push(L.delRoute(w.name, k));
  }
  for (const r of w.routes) if (!routes.some((k) => routeMatches(k, r))) lines.push(L.route(w.name, r));
  return lines;
}
