/**
 * The Linux kernel data plane: one veth pair per connection, each end created directly in its netns,
 * configured through `ip -batch` (one exec per netns), converged rather than replayed. Read (`read.ts`),
 * plan (`plan.ts`, pure) and apply (`apply.ts`) are separate; this file assembles them and holds the
 * inventory of owned connections (`../inventory.ts`).
 *
 * `ensure`:
 * - Fast path for an owner this instance does not hold yet: one batch in the NSE netns creates the pair
 *   and configures the NSE end (`link add` is the first line, so a name that already exists stops the
 *   batch before anything changed), one batch in the NSC netns configures the other end: two execs.
 *   A later line failing rolls back what the call created and throws a DataplaneError naming the step.
 * - Otherwise (or when the name exists): read both ends, each by name (`dev X`: its link, addresses and
 *   routes, not the rest of the netns; one exec each, in parallel) and converge:
 *   a link with the name but without our alias, or with the alias of another connection that is live
 *   (held, or with an operation running) → AlreadyExistsError, nothing changed; an orphan's (another
 *   owner, not live: deleted under that owner's lock) or ours but not paired → delete and recreate; ours →
 *   MTU, up, addresses (link-local kept), routes (`replace`, strays removed), ping_group_range. A healthy
 *   pair is never recreated.
 * `remove` deletes by name after checking the alias (read by name too). Operations on one owner run one
 * at a time (the inventory's lock). `start` scans every netns on the machine (or those `options.netns`
 * lists) for nsm-ts links; `collectOrphans` removes those nobody ensured since; `sweepOrphans` scans only
 * the netns this data plane has put or found links in (forgotten once they are gone) and removes orphans
 * seen twice.
 *
 * Tunnel ends of remote connections (`ensureTunnel`: VXLAN, userspace WireGuard) share the inventory,
 * the aliases and the orphan GC; their UDP side lives in `options.tunnelNetns` (`tunnel-ends.ts`,
 * `tunnel.ts`).
 *
 * Mirrors sdk-kernel's `connectioncontextkernel` + kernel forwarder veth handling (see style-anchors §4).
 * No background work.
 */
import type { Logger } from '../../core/log.js';
import { Inventory } from '../inventory.js';
import { normalizeSpec, parseAlias, type WantPair } from '../spec.js';
import type { DataPlane, OpOptions, OwnedLink, PairSpec, PairState, Side, SweepOptions } from '../types.js';
import { PairWriter } from './apply.js';
import { Ip, type IpOptions, type NetnsPath } from './ip.js';
import { NetnsResolver, assertNotPrivileged, listNetns } from './netns.js';
import { tunnelEnds } from './tunnel-ends.js';
import { planEnsure, planRemove, type ConvergeEnd } from './plan.js';
import { readEnd, readLink, scanOwned, type NetnsRef } from './read.js';

export { ownNetnsUrl, NetnsResolver, listNetns } from './netns.js';
export { readInterface, watchLinks } from './inspect.js';

export interface LinuxDataPlaneOptions extends IpOptions {
  /** How many netns `start()` reads at once. */
  scanConcurrency?: number;
  /**
   * Whose links these are (the forwarder's name): owners are written as `<scope>/<owner>` in the alias,
   * and `start()`, `collectOrphans()` and sweeps only ever see links of this scope — another forwarder on
   * the same machine (another node, another mesh) keeps its links. Its links still count as taken names.
   * Default: none (every nsm-ts link on the machine is this data plane's). A name taken by another
   * scope's link is AlreadyExists, never an orphan to replace.
   */
  scope?: string;
  /** The netns `start()` takes inventory of; default every netns on the machine (`listNetns`). */
  netns?: () => Promise<NetnsRef[]>;
  /**
   * Where tunnel ends' UDP sockets live (the node's netns, which holds NSM_TUNNEL_IP): a netns path such as
   * `/run/netns/x` or `/proc/<pid>/ns/net`. VXLAN devices are created there and wireguard-go runs there;
   * both are then moved into the pod. Default: this process's own netns.
   */
  tunnelNetns?: string;
  /** The wireguard-go binary (default `wireguard-go` on PATH). */
  wireguardBin?: string;
}

export const DEFAULT_SCAN_CONCURRENCY = 8;

export interface LinuxDataPlane extends DataPlane {
  readonly resolver: NetnsResolver;
}

export function linuxDataPlane(deps: { log: Logger }, options: LinuxDataPlaneOptions = {}): LinuxDataPlane {
  const log = deps.log.child({ element: 'dataplane-linux' });
  const ip = new Ip(log, options);
  const resolver = new NetnsResolver();
  const writer = new PairWriter(ip, log);
  const inventory = new Inventory();
  const scanConcurrency = options.scanConcurrency ?? DEFAULT_SCAN_CONCURRENCY;
  const scanned = options.netns ?? listNetns;
  const prefix = options.scope === undefined ? '' : `${options.scope}/`;
  const scoped = (spec: PairSpec): PairSpec => (prefix ? { ...spec, owner: prefix + spec.owner } : spec);
  const inScope = (l: OwnedLink) => l.owner.startsWith(prefix);
  const unscoped = (owner: string) => owner.slice(prefix.length);
  /** Where this data plane has put or found links (netns URL), the sweep's scope. */
  const places = new Set<string>();
  const tunnels = tunnelEnds({ ip, log, resolver, inventory, prefix, places }, options);

  const converge = async (w: WantPair, paths: Record<Side, NetnsPath>, signal?: AbortSignal): Promise<PairState> => {
    if (!inventory.holds(w.owner)) {
      const fresh = await writer.create(w, paths.nsc, paths.nse, true, signal);
      if (fresh) return fresh;
    }
    const [sa, sb] = await Promise.all([readEnd(ip, paths.nsc, 'nsc', w.nsc.name, w.owner, signal), readEnd(ip, paths.nse, 'nse', w.nse.name, w.owner, signal)]);
    // another scope's link (another forwarder's) is always taken; an orphan only within our scope
    const plan = planEnsure(w, sa, sb, (o) => o !== w.owner && (!o.startsWith(prefix) || inventory.live(o)));
    if (plan.kind === 'recreate') {
      const deleted = await writer.deleteStale(w, paths, plan.stale, (o, fn) => inventory.claimOrphan(o, fn), signal);
      const fresh = (await writer.create(w, paths.nsc, paths.nse, false, signal))!;
      return { ...fresh, actions: [...deleted, ...fresh.actions] };
    }
    await writer.converge(w, paths.nsc, paths.nse, plan.nsc, plan.nse, signal);
    const end = (c: ConvergeEnd) => ({ ifindex: c.link.ifindex, mac: c.link.mac, created: false });
    return { nsc: end(plan.nsc), nse: end(plan.nse), actions: plan.actions };
  };

  const removeLink = async (link: OwnedLink, opts: OpOptions): Promise<void> => {
    const path = await resolver.tryResolve(link.netns);
    if (!path) return;
    const l = await readLink(ip, path, link.name, link.owner, opts.signal);
    const a = parseAlias(l?.alias);
    if (!l || !a || a.owner !== link.owner || a.side !== link.side) return;
    if (l.kind === 'vxlan' || l.kind === 'tun') await tunnels.writer.deleteEnd(path, link.name, l.kind, link.owner, link.side, opts.signal);
    else await writer.deleteLink(path, link.name, link.owner, opts.signal);
  };

  const sweepScan = async (opts: OpOptions): Promise<OwnedLink[]> => {
    const refs: NetnsRef[] = [];
    for (const url of places) {
      const path = await resolver.tryResolve(url);
      if (path) refs.push({ url, path });
      else places.delete(url);
    }
    return tunnels.withTunnelInfo((await scanOwned(ip, refs, scanConcurrency, opts)).filter(inScope), opts.signal);
  };

  return {
    resolver,

    async ensure(spec: PairSpec, opts: OpOptions = {}): Promise<PairState> {
      const w = normalizeSpec(scoped(spec));
      return inventory.exclusive(w.owner, async () => {
        const [nsc, nse] = await Promise.all([resolver.resolve(w.nsc.netns), resolver.resolve(w.nse.netns)]);
        await Promise.all([assertNotPrivileged(w.nsc.netns, nsc, 'client'), assertNotPrivileged(w.nse.netns, nse, 'endpoint')]);
        places.add(w.nsc.netns).add(w.nse.netns);
        const state = await converge(w, { nsc, nse }, opts.signal);
        inventory.hold(w.owner);
        return state;
      });
    },

    async remove(spec: PairSpec, opts: OpOptions = {}): Promise<void> {
      const w = normalizeSpec(scoped(spec));
      inventory.release(w.owner);
      return inventory.exclusive(w.owner, async () => {
        const [pa, pb] = await Promise.all([resolver.tryResolve(w.nsc.netns), resolver.tryResolve(w.nse.netns)]);
        const [la, lb] = await Promise.all([
          pa ? readLink(ip, pa, w.nsc.name, w.owner, opts.signal) : undefined,
          pb ? readLink(ip, pb, w.nse.name, w.owner, opts.signal) : undefined,
        ]);
        const del = planRemove(w.owner, la, lb);
        if (del.nsc) await writer.deleteLink(pa!, w.nsc.name, w.owner, opts.signal);
        if (del.nse) await writer.deleteLink(pb!, w.nse.name, w.owner, opts.signal);
      });
    },

    ensureTunnel: tunnels.ensureTunnel,
    removeTunnel: tunnels.removeTunnel,
    tunnelPrivateKey: tunnels.tunnelPrivateKey,

    held: () => inventory.held().map(unscoped),

    start: async (opts: OpOptions = {}) => {
      tunnels.forget();
      const found = await inventory.start(async () => tunnels.withTunnelInfo((await scanOwned(ip, await scanned(), scanConcurrency, opts)).filter(inScope), opts.signal));
      for (const l of found) places.add(l.netns);
      return found.map((l) => ({ ...l, owner: unscoped(l.owner) }));
    },

    collectOrphans: (opts: OpOptions = {}) => inventory.collectOrphans(removeLink, opts),

    sweepOrphans: (opts: SweepOptions = {}) => inventory.sweep(() => sweepScan(opts), removeLink, opts),
  };
}
