/**
 * In-memory data plane for the in-process sandbox: same interface and semantics as the Linux one
 * (aliases prove ownership, foreign links and links of another live connection are never touched, idempotent converge keeps ifindex and MAC,
 * fresh-create failures roll back, remove is exact), checked by the same contract suite. Tests break
 * things through `setDown`, `deleteLink`, `flushAddrs`, `delRoute`, `addAddr`, `addForeignLink`, and ask
 * `reachable(netns, addr)` for a modelled ping. Netns are any strings, created on first use. The
 * modelled kernel (the netns) can be shared: `restarted()` is a new data plane over the same netns, as a
 * restarted forwarder finds them. No I/O, no background work.
 */
import { randomBytes } from 'node:crypto';
import { DataplaneError } from '../../core/errors.js';
import { throwIfAborted } from '../../core/signals.js';
import { contains, tryParseIp } from '../../api/cidr.js';
import { Inventory } from '../inventory.js';
import { checkFree, isOurs, normAddr, normalizeSpec, parseAlias, type WantEnd, type WantPair, type WantRoute } from '../spec.js';
import type { DataPlane, OpOptions, OrphanReport, OwnedLink, PairSpec, PairState, RouteSpec, SweepOptions, TunnelSpec, TunnelState } from '../types.js';

export interface FakeLink {
  ifindex: number;
  name: string;
  mac: string;
  alias?: string;
  up: boolean;
  mtu: number;
  kind: 'veth' | 'dummy';
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

export class FakeDataPlane implements DataPlane {
  #netns = new Map<string, Netns>();
  readonly #inventory = new Inventory();
  /** Netns this data plane has put or found links in: the sweep's scope. */
  readonly #places = new Set<string>();
  /** Number of mutating operations, for tests that assert nothing changed. */
  mutations = 0;

  // Remote connections: not built yet (issue 15 work in progress; replaced by the tunnel data plane).
  async ensureTunnel(spec: TunnelSpec): Promise<TunnelState> {
    throw new DataplaneError('ensure tunnel', `remote mechanisms are not supported yet (${spec.tunnel.kind})`);
  }
  async removeTunnel(): Promise<void> {}
  async tunnelPrivateKey(): Promise<string | undefined> {
    return undefined;
  }

  /** A new data plane (nothing held) over the same netns, as a restarted forwarder would find them. */
  restarted(): FakeDataPlane {
    const dp = new FakeDataPlane();
    dp.#netns = this.#netns;
    return dp;
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
      if (!l.up || !l.peer) continue;
      const p = this.#netns.get(l.peer.netns)?.links.get(l.peer.name);
      if (!p || !p.up) continue;
      if (!p.addrs.some((a) => normAddr(a, 'a').local === addr)) continue;
      if (!routeCovers(l, addr)) continue;
      const src = l.addrs.map((a) => normAddr(a, 'a')).find((a) => a.family === dst.family);
      if (src && routeCovers(p, src.local)) return true;
    }
    return false;
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
        if (a) out.push({ netns, name: l.name, owner: a.owner, side: a.side, ifindex: l.ifindex, mac: l.mac });
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

export function fakeDataPlane(): FakeDataPlane {
  return new FakeDataPlane();
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
