/**
 * In-memory data plane for the in-process sandbox: same interface and semantics as the Linux one
 * (aliases prove ownership, foreign links and links of another live connection are never touched, idempotent converge keeps ifindex and MAC,
 * fresh-create failures roll back, remove is exact), checked by the same contract suite. Tests break
 * things through `setDown`, `deleteLink`, `flushAddrs`, `delRoute`, `addAddr`, `addForeignLink`, and ask
 * `reachable(netns, addr)` for a modelled ping. Netns are any strings, created on first use. The
 * modelled kernel (the netns) can be shared: `restarted()` is a new data plane over the same netns, as a
 * restarted forwarder finds them. Tunnel ends (`ensureTunnel`) are links of kind `vxlan` / `tun` with
 * their parameters; two ends on different nodes (`onNode`: another data plane over the same netns with
 * its own tunnel netns) reach each other when their parameters match both ways (real X25519 for the
 * WireGuard keys); a VNI or listen port used twice in one tunnel netns is refused like the kernel does.
 * No I/O, no background work.
 */
import { randomBytes } from 'node:crypto';
import { DataplaneError } from '../../core/errors.js';
import { throwIfAborted } from '../../core/signals.js';
import { contains, tryParseIp } from '../../api/cidr.js';
import { Inventory } from '../inventory.js';
import { checkFree, isOurs, normAddr, normalizeSpec, parseAlias, type WantEnd, type WantPair, type WantRoute } from '../spec.js';
import { linkKindOf, normalizeTunnelSpec, publicKeyOf, type WantTunnel, type WantTunnelParams } from '../tunnel-spec.js';
import { AlreadyExistsError } from '../../core/errors.js';
import type { DataPlane, OpOptions, OrphanReport, OwnedLink, PairSpec, PairState, RouteSpec, SweepOptions, TunnelSpec, TunnelState } from '../types.js';

export interface FakeLink {
  ifindex: number;
  name: string;
  mac: string;
  alias?: string;
  up: boolean;
  mtu: number;
  kind: 'veth' | 'dummy' | 'vxlan' | 'tun';
  /** A tunnel end's parameters, and the netns of its UDP side. */
  tunnel?: { params: WantTunnelParams; underlay: string };
  /** Addresses as canonical `ip/prefix`. */
  addrs: string[];
  routes: RouteSpec[];
  peer?: { netns: string; name: string };
}

interface Netns {
  nextIndex: number;
  links: Map<string, FakeLink>;
}

export const FAKE_DEFAULT_MTU = 1500;

export interface FakeDataPlaneOptions {
  /** The modelled node netns where tunnel ends' UDP sockets live (default `node`). */
  tunnelNetns?: string;
}

export class FakeDataPlane implements DataPlane {
  #netns = new Map<string, Netns>();
  readonly #tunnelNetns: string;
  readonly #inventory = new Inventory();
  /** Netns this data plane has put or found links in: the sweep's scope. */
  readonly #places = new Set<string>();
  /** Number of mutating operations, for tests that assert nothing changed. */
  mutations = 0;

  constructor(options: FakeDataPlaneOptions = {}) {
    this.#tunnelNetns = options.tunnelNetns ?? 'node';
  }

  /** A new data plane (nothing held) over the same netns, as a restarted forwarder would find them. */
  restarted(): FakeDataPlane {
    return this.onNode(this.#tunnelNetns);
  }

  /** Another forwarder's data plane over the same modelled kernel, with its tunnel UDP side in `tunnelNetns`. */
  onNode(tunnelNetns: string): FakeDataPlane {
    const dp = new FakeDataPlane({ tunnelNetns });
    dp.#netns = this.#netns;
    return dp;
  }

  async ensureTunnel(spec: TunnelSpec, opts: OpOptions = {}): Promise<TunnelState> {
    const w = normalizeTunnelSpec(spec);
    if (opts.signal) throwIfAborted(opts.signal);
    this.#places.add(w.end.netns);
    const state = this.#ensureTunnel(w);
    this.#inventory.hold(w.owner);
    return state;
  }

  async removeTunnel(spec: TunnelSpec, opts: OpOptions = {}): Promise<void> {
    const w = normalizeTunnelSpec(spec);
    this.#inventory.release(w.owner);
    if (opts.signal) throwIfAborted(opts.signal);
    const l = this.#netns.get(w.end.netns)?.links.get(w.end.name);
    const a = parseAlias(l?.alias);
    if (l?.tunnel && a && a.owner === w.owner && a.side === w.side) this.#delete(w.end.netns, l.name);
  }

  async tunnelPrivateKey(owner: string, opts: OpOptions = {}): Promise<string | undefined> {
    if (opts.signal) throwIfAborted(opts.signal);
    for (const ns of this.#netns.values()) {
      for (const l of ns.links.values()) {
        const p = l.tunnel?.params;
        if (p?.kind === 'wireguard' && l.tunnel!.underlay === this.#tunnelNetns && parseAlias(l.alias)?.owner === owner) return p.privateKey;
      }
    }
    return undefined;
  }

  #ns(name: string): Netns {
    let n = this.#netns.get(name);
    if (!n) {
      n = { nextIndex: 2, links: new Map() };
      this.#netns.set(name, n);
    }
    return n;
  }

  /** A copy of a link, or undefined. */
  link(netns: string, name: string): FakeLink | undefined {
    const l = this.#netns.get(netns)?.links.get(name);
    return l ? structuredClone(l) : undefined;
  }

  links(netns: string): FakeLink[] {
    return [...(this.#netns.get(netns)?.links.values() ?? [])].map((l) => structuredClone(l));
  }

  /** The netns that hold at least one link, sorted. */
  namespaces(): string[] {
    return [...this.#netns].filter(([, ns]) => ns.links.size > 0).map(([name]) => name).sort();
  }

  /** Drops a netns and everything in it (veth peers elsewhere go too). */
  deleteNetns(netns: string): void {
    for (const l of this.#netns.get(netns)?.links.values() ?? []) this.#delete(netns, l.name);
    this.#netns.delete(netns);
  }

  // ---- breaking things (tests) ----

  setDown(netns: string, name: string): void {
    const l = this.#must(netns, name);
    l.up = false;
    l.routes = []; // the kernel drops routes through a link that goes down
  }

  deleteLink(netns: string, name: string): void {
    this.#must(netns, name);
    this.#delete(netns, name);
  }

  flushAddrs(netns: string, name: string): void {
    this.#must(netns, name).addrs = [];
  }

  delRoute(netns: string, name: string, prefix: string): void {
    const l = this.#must(netns, name);
    l.routes = l.routes.filter((r) => r.prefix !== prefix);
  }

  addAddr(netns: string, name: string, cidr: string): void {
    const l = this.#must(netns, name);
    const a = normAddr(cidr, 'cidr').cidr;
    if (!l.addrs.includes(a)) l.addrs.push(a);
  }

  addForeignLink(netns: string, name: string, alias?: string): FakeLink {
    const ns = this.#ns(netns);
    if (ns.links.has(name)) throw new Error(`${name} exists in ${netns}`);
    const l: FakeLink = { ifindex: ns.nextIndex++, name, mac: randomMac(), up: true, mtu: FAKE_DEFAULT_MTU, kind: 'dummy', addrs: [], routes: [] };
    if (alias !== undefined) l.alias = alias;
    ns.links.set(name, l);
    return structuredClone(l);
  }

  /** Modelled ping from `netns` to `addr` across a veth: both ends up, addresses and routes both ways. */
  reachable(netns: string, addr: string): boolean {
    const dst = tryParseIp(addr);
    if (!dst) return false;
    for (const l of this.#netns.get(netns)?.links.values() ?? []) {
      if (!l.up || (!l.peer && !l.tunnel)) continue;
      const p = l.peer ? this.#netns.get(l.peer.netns)?.links.get(l.peer.name) : this.#tunnelPeer(l);
      if (!p || !p.up) continue;
      if (!p.addrs.some((a) => normAddr(a, 'a').local === addr)) continue;
      if (!routeCovers(l, addr)) continue;
      const src = l.addrs.map((a) => normAddr(a, 'a')).find((a) => a.family === dst.family);
      if (src && routeCovers(p, src.local)) return true;
    }
    return false;
  }

  /** The tunnel end on another node whose parameters match `l`'s both ways. */
  #tunnelPeer(l: FakeLink): FakeLink | undefined {
    for (const ns of this.#netns.values()) {
      for (const p of ns.links.values()) {
        if (p !== l && p.tunnel && p.tunnel.underlay !== l.tunnel!.underlay && tunnelsMatch(l.tunnel!.params, p.tunnel.params)) return p;
      }
    }
    return undefined;
  }

  /** Another end in this node's tunnel netns already uses the VNI or UDP port `t` needs. */
  #checkUnderlay(t: WantTunnelParams): void {
    for (const ns of this.#netns.values()) {
      for (const l of ns.links.values()) {
        const p = l.tunnel?.params;
        if (!p || l.tunnel!.underlay !== this.#tunnelNetns) continue;
        if (t.kind === 'vxlan' && p.kind === 'vxlan' && p.vni === t.vni && p.port === t.port) {
          const o = parseAlias(l.alias)?.owner;
          throw new AlreadyExistsError(`VXLAN VNI ${t.vni} (UDP port ${t.port}) is already in use in the tunnel netns${o ? ` by connection ${o}` : ''}`);
        }
        if (t.kind === 'wireguard' && p.kind === 'wireguard' && p.listenPort === t.listenPort) {
          throw new DataplaneError('set wireguard listen port', `UDP port ${t.listenPort} is already in use in the tunnel netns (WireGuard listen port)`);
        }
      }
    }
  }

  #ensureTunnel(w: WantTunnel): TunnelState {
    const ns = this.#ns(w.end.netns);
    let l = ns.links.get(w.end.name);
    checkFree(l, w.end, w.owner, (o) => o !== w.owner && this.#inventory.live(o));
    const actions: string[] = [];
    if (l) {
      const a = parseAlias(l.alias)!;
      const p = l.tunnel?.params;
      const why =
        a.owner !== w.owner || a.side !== w.side ? `stale link ${l.name} (${l.alias})`
        : l.kind !== linkKindOf(w.tunnel.kind) || !p || l.tunnel!.underlay !== this.#tunnelNetns ? `${l.kind} link ${l.name} is not a ${w.tunnel.kind} end`
        : p.kind === 'vxlan' && JSON.stringify(p) !== JSON.stringify(w.tunnel) ? 'vxlan parameters changed'
        : undefined;
      if (why) {
        this.#delete(w.end.netns, l.name);
        actions.push(`${w.side}: delete ${why}`);
        l = undefined;
      }
    }
    if (!l) {
      const created = this.#createTunnel(w, ns);
      return { end: created.end, actions: [...actions, ...created.actions] };
    }
    const p = l.tunnel!.params;
    if (p.kind === 'wireguard' && w.tunnel.kind === 'wireguard') {
      const t = w.tunnel;
      if (p.privateKey !== t.privateKey) actions.push('set wireguard private key');
      if (p.listenPort !== t.listenPort) actions.push(`set wireguard listen port ${t.listenPort}`);
      if (p.peerPublicKey !== t.peerPublicKey || p.remoteIp !== t.remoteIp || p.remotePort !== t.remotePort) actions.push(`set wireguard peer ${t.remoteIp}:${t.remotePort}`);
      if (p.listenPort !== t.listenPort) this.#checkUnderlay(t);
      l.tunnel = { params: { ...t }, underlay: this.#tunnelNetns };
    }
    actions.push(...this.#converge(w.end, l, w.mtu));
    if (actions.length) this.mutations++;
    return { end: { ifindex: l.ifindex, mac: l.mac, created: false }, actions };
  }

  #createTunnel(w: WantTunnel, ns: Netns): TunnelState {
    this.#checkUnderlay(w.tunnel);
    const l: FakeLink = {
      ifindex: ns.nextIndex++,
      name: w.end.name,
      mac: w.tunnel.kind === 'vxlan' ? randomMac() : '',
      up: false,
      mtu: w.mtu ?? FAKE_DEFAULT_MTU,
      kind: linkKindOf(w.tunnel.kind),
      addrs: [],
      routes: [],
      tunnel: { params: { ...w.tunnel }, underlay: this.#tunnelNetns },
      alias: w.end.alias,
    };
    ns.links.set(l.name, l);
    this.mutations++;
    const actions = [w.tunnel.kind === 'vxlan' ? `create vxlan (vni ${w.tunnel.vni})` : 'start wireguard-go', `${w.side}: move into the pod`, `${w.side}: set alias`];
    try {
      for (const ad of w.end.addrs) {
        l.addrs.push(ad.cidr);
        actions.push(`${w.side}: add address ${ad.cidr}`);
      }
      l.up = true;
      actions.push(`${w.side}: set up`);
      for (const r of w.end.routes) {
        addRoute(l, r);
        actions.push(`${w.side}: ${routeStep(r)}`);
      }
    } catch (err) {
      this.#delete(w.end.netns, l.name);
      throw err;
    }
    return { end: { ifindex: l.ifindex, mac: l.mac, created: true }, actions };
  }

  // ---- DataPlane ----

  async ensure(spec: PairSpec, opts: OpOptions = {}): Promise<PairState> {
    const w = normalizeSpec(spec);
    if (opts.signal) throwIfAborted(opts.signal);
    this.#places.add(w.nsc.netns).add(w.nse.netns);
    const state = this.#ensure(w);
    this.#inventory.hold(w.owner);
    return state;
  }

  async remove(spec: PairSpec, opts: OpOptions = {}): Promise<void> {
    const w = normalizeSpec(spec);
    this.#inventory.release(w.owner);
    if (opts.signal) throwIfAborted(opts.signal);
    for (const end of [w.nsc, w.nse]) {
      const l = this.#netns.get(end.netns)?.links.get(end.name);
      if (isOurs(l, w.owner, end.side)) this.#delete(end.netns, end.name);
    }
  }

  held(): string[] {
    return this.#inventory.held();
  }

  async start(opts: OpOptions = {}): Promise<OwnedLink[]> {
    if (opts.signal) throwIfAborted(opts.signal);
    const found = await this.#inventory.start(async () => this.#scan());
    for (const l of found) this.#places.add(l.netns);
    return found;
  }

  async collectOrphans(opts: OpOptions = {}): Promise<OrphanReport> {
    return this.#inventory.collectOrphans(async (link) => this.#removeLink(link), opts);
  }

  async sweepOrphans(opts: SweepOptions = {}): Promise<OrphanReport> {
    for (const p of this.#places) if (!this.#netns.has(p)) this.#places.delete(p);
    return this.#inventory.sweep(async () => this.#scan(this.#places), async (link) => this.#removeLink(link), opts);
  }

  // ---- internals ----

  #ensure(w: WantPair): PairState {
    const a = this.#ns(w.nsc.netns);
    const b = this.#ns(w.nse.netns);
    const la = a.links.get(w.nsc.name);
    const lb = b.links.get(w.nse.name);
    const live = (o: string) => o !== w.owner && this.#inventory.live(o);
    checkFree(la, w.nsc, w.owner, live);
    checkFree(lb, w.nse, w.owner, live);
    const paired =
      isOurs(la, w.owner, 'nsc') && isOurs(lb, w.owner, 'nse') && la.peer?.netns === w.nse.netns && la.peer.name === w.nse.name && lb.peer?.netns === w.nsc.netns && lb.peer.name === w.nsc.name;
    if (!paired) {
      const actions: string[] = [];
      if (la) {
        this.#delete(w.nsc.netns, la.name);
        actions.push(`nsc: delete stale link ${la.name} (${la.alias})`);
      }
      if (lb && b.links.has(lb.name)) {
        this.#delete(w.nse.netns, lb.name);
        actions.push(`nse: delete stale link ${lb.name} (${lb.alias})`);
      }
      const r = this.#create(w);
      return { ...r, actions: [...actions, ...r.actions] };
    }
    const actions = [...this.#converge(w.nsc, la, w.mtu), ...this.#converge(w.nse, lb, w.mtu)];
    if (actions.length) this.mutations++;
    return { nsc: { ifindex: la.ifindex, mac: la.mac, created: false }, nse: { ifindex: lb.ifindex, mac: lb.mac, created: false }, actions };
  }

  /** The nsm-ts links of every netns, or of those in `only`. */
  #scan(only?: ReadonlySet<string>): OwnedLink[] {
    const out: OwnedLink[] = [];
    for (const [netns, ns] of this.#netns) {
      if (only && !only.has(netns)) continue;
      for (const l of ns.links.values()) {
        const a = parseAlias(l.alias);
        if (!a || (l.tunnel && l.tunnel.underlay !== this.#tunnelNetns)) continue; // another node's tunnel end
        const found: OwnedLink = { netns, name: l.name, owner: a.owner, side: a.side, ifindex: l.ifindex, mac: l.mac, kind: l.kind };
        const p = l.tunnel?.params;
        if (p) found.tunnel = p.kind === 'vxlan' ? { kind: 'vxlan', vni: p.vni, port: p.port } : { kind: 'wireguard', port: p.listenPort };
        out.push(found);
      }
    }
    return out;
  }

  /** Removes one link found by `#scan` if it still carries the same alias. */
  #removeLink(link: OwnedLink): void {
    const l = this.#netns.get(link.netns)?.links.get(link.name);
    const a = parseAlias(l?.alias);
    if (l && a && a.owner === link.owner && a.side === link.side) this.#delete(link.netns, link.name);
  }

  #must(netns: string, name: string): FakeLink {
    const l = this.#netns.get(netns)?.links.get(name);
    if (!l) throw new Error(`fake: no link ${name} in ${netns}`);
    return l;
  }

  #delete(netns: string, name: string): void {
    const l = this.#netns.get(netns)?.links.get(name);
    if (!l) return;
    this.mutations++;
    this.#netns.get(netns)!.links.delete(name);
    if (l.peer) this.#netns.get(l.peer.netns)?.links.delete(l.peer.name);
  }

  #create(w: WantPair): PairState {
    const a = this.#ns(w.nsc.netns);
    const b = this.#ns(w.nse.netns);
    if (a.links.has(w.nsc.name) || b.links.has(w.nse.name)) throw new DataplaneError('create veth', `${w.nsc.name}/${w.nse.name}: File exists`);
    const mtu = w.mtu ?? FAKE_DEFAULT_MTU;
    const la: FakeLink = { ifindex: a.nextIndex++, name: w.nsc.name, mac: randomMac(), up: false, mtu, kind: 'veth', addrs: [], routes: [], peer: { netns: w.nse.netns, name: w.nse.name } };
    const lb: FakeLink = { ifindex: b.nextIndex++, name: w.nse.name, mac: randomMac(), up: false, mtu, kind: 'veth', addrs: [], routes: [], peer: { netns: w.nsc.netns, name: w.nsc.name } };
    a.links.set(la.name, la);
    b.links.set(lb.name, lb);
    this.mutations++;
    const actions = [`create veth ${w.nsc.name}/${w.nse.name}`];
    try {
      for (const [end, l] of [[w.nsc, la], [w.nse, lb]] as const) {
        l.alias = end.alias;
        actions.push(`${end.side}: set alias`);
        for (const ad of end.addrs) {
          l.addrs.push(ad.cidr);
          actions.push(`${end.side}: add address ${ad.cidr}`);
        }
        l.up = true;
        actions.push(`${end.side}: set up`);
        for (const r of end.routes) {
          addRoute(l, r);
          actions.push(`${end.side}: ${routeStep(r)}`);
        }
        actions.push(`${end.side}: set ping_group_range`);
      }
    } catch (err) {
      this.#delete(w.nsc.netns, la.name);
      throw err;
    }
    return { nsc: { ifindex: la.ifindex, mac: la.mac, created: true }, nse: { ifindex: lb.ifindex, mac: lb.mac, created: true }, actions };
  }

  #converge(w: WantEnd, l: FakeLink, mtu?: number): string[] {
    const actions: string[] = [];
    const act = (s: string) => actions.push(`${w.side}: ${s}`);
    if (mtu !== undefined && l.mtu !== mtu) {
      l.mtu = mtu;
      act(`set mtu ${mtu}`);
    }
    if (!l.up) {
      l.up = true;
      act('set up');
    }
    const want = new Set(w.addrs.map((a) => a.cidr));
    for (const a of [...l.addrs]) {
      if (!want.has(a) && !isLinkLocal(a)) {
        l.addrs = l.addrs.filter((x) => x !== a);
        act(`remove address ${a}`);
      }
    }
    for (const a of w.addrs) {
      if (!l.addrs.includes(a.cidr)) {
        l.addrs.push(a.cidr);
        act(`add address ${a.cidr}`);
      }
    }
    const wanted = new Set(w.routes.map((r) => r.prefix));
    for (const r of [...l.routes]) {
      if (!wanted.has(r.prefix)) {
        l.routes = l.routes.filter((x) => x !== r);
        act(`remove route ${r.prefix}${r.via ? ` via ${r.via}` : ''}`);
      }
    }
    for (const r of w.routes) {
      const have = l.routes.find((x) => x.prefix === r.prefix);
      if (!have || have.via !== r.via) {
        addRoute(l, r);
        act(routeStep(r));
      }
    }
    return actions;
  }
}

export function fakeDataPlane(options: FakeDataPlaneOptions = {}): FakeDataPlane {
  return new FakeDataPlane(options);
}

/** Two tunnel ends on two nodes that reach each other: same VNI and port and crossed IPs, or crossed WireGuard keys and endpoints. */
function tunnelsMatch(a: WantTunnelParams, b: WantTunnelParams): boolean {
  if (a.kind === 'vxlan' && b.kind === 'vxlan') return a.vni === b.vni && a.port === b.port && a.localIp === b.remoteIp && a.remoteIp === b.localIp;
  if (a.kind === 'wireguard' && b.kind === 'wireguard') {
    return (
      publicKeyOf(a.privateKey) === b.peerPublicKey &&
      publicKeyOf(b.privateKey) === a.peerPublicKey &&
      a.remoteIp === b.localIp &&
      a.remotePort === b.listenPort &&
      b.remoteIp === a.localIp &&
      b.remotePort === a.listenPort
    );
  }
  return false;
}

function routeStep(r: WantRoute): string {
  return r.via ? `add route ${r.prefix} via ${r.via}` : `add route ${r.prefix}`;
}

/** Like the kernel: a next hop that is unspecified, multicast, broadcast or a local address is invalid. */
function addRoute(l: FakeLink, r: WantRoute): void {
  if (r.via) {
    const g = tryParseIp(r.via)!;
    const bad =
      (g.family === 4 && (g.value === 0n || g.value === 0xffffffffn || g.value >> 28n === 0xen)) ||
      (g.family === 6 && (g.value === 0n || g.value >> 120n === 0xffn)) ||
      l.addrs.some((a) => normAddr(a, 'a').local === r.via);
    if (bad) throw new DataplaneError(routeStep(r), `route ${r.prefix} via ${r.via} on ${l.name}: Nexthop has invalid gateway`);
  }
  l.routes = l.routes.filter((x) => x.prefix !== r.prefix);
  l.routes.push(r.via ? { prefix: r.prefix, via: r.via } : { prefix: r.prefix });
}

/** A route, or the connected subnet of an address (prefix shorter than a host), covers `addr`. */
function routeCovers(l: FakeLink, addr: string): boolean {
  return l.routes.some((r) => contains(r.prefix, addr)) || l.addrs.some((a) => contains(a, addr) && normAddr(a, 'a').prefixlen < (addr.includes(':') ? 128 : 32));
}

function isLinkLocal(cidr: string): boolean {
  return cidr.toLowerCase().startsWith('fe80:') || cidr.startsWith('169.254.');
}

function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
