/**
 * The Linux data plane's tunnel-end operations (`ensureTunnel`, `removeTunnel`, `tunnelPrivateKey`) as
 * `index.ts` assembles them: the same inventory (ownership, one operation per owner, orphans) and scope
 * as the veth pairs, the tunnel writer (`tunnel.ts`) bound to the tunnel netns, and what this instance
 * knows of the VNIs in use there (for the AlreadyExists message). No background work.
 */
import type { Logger } from '../../core/log.js';
import type { Inventory } from '../inventory.js';
import { normalizeTunnelSpec, tunnelTmpName } from '../tunnel-spec.js';
import type { OpOptions, OwnedLink, TunnelSpec, TunnelState } from '../types.js';
import { SELF, type Ip, type NetnsPath } from './ip.js';
import { assertNotPrivileged, netnsUrlOf, type NetnsResolver } from './netns.js';
import { TunnelWriter } from './tunnel.js';
import { readConfig } from './wireguard.js';

export interface TunnelEndsContext {
  ip: Ip;
  log: Logger;
  resolver: NetnsResolver;
  inventory: Inventory;
  /** `<scope>/` or empty: how owners are written in aliases. */
  prefix: string;
  /** Where the data plane has put or found links (the sweep's scope); tunnel ends add theirs. */
  places: Set<string>;
}

export interface TunnelEndsOptions {
  tunnelNetns?: string;
  wireguardBin?: string;
  nsenterBin?: string;
}

export function tunnelEnds(ctx: TunnelEndsContext, options: TunnelEndsOptions) {
  const { resolver, inventory, prefix, places } = ctx;
  const tunnelPath: NetnsPath = options.tunnelNetns ?? SELF;
  /** Owner holding each VXLAN `vni|port` of the tunnel netns (what this instance ensured or found). */
  const vniOwners = new Map<string, string>();
  const writer = new TunnelWriter(ctx.ip, ctx.log, tunnelPath, {
    ...(options.wireguardBin ? { wireguardBin: options.wireguardBin } : {}),
    ...(options.nsenterBin ? { nsenterBin: options.nsenterBin } : {}),
    vniHolder: (vni, port) => vniOwners.get(`${vni}|${port}`)?.slice(prefix.length),
  });
  let tunnelUrl: string | undefined;
  const tunnelPlace = async () => (tunnelUrl ??= await netnsUrlOf(tunnelPath === SELF ? '/proc/self/ns/net' : tunnelPath));
  const forgetVnis = (owner: string) => {
    for (const [k, o] of vniOwners) if (o === owner) vniOwners.delete(k);
  };

  return {
    writer,

    /** Forgets the VNIs known in use (a new `start()` finds them again). */
    forget: () => vniOwners.clear(),

    /** Fills in what a scan cannot see of a tunnel end (a WireGuard end's listen port, over UAPI) and notes the VNIs in use. */
    async withTunnelInfo(links: OwnedLink[], signal?: AbortSignal): Promise<OwnedLink[]> {
      for (const l of links) {
        if (l.tunnel?.kind === 'vxlan' && l.tunnel.vni !== undefined) vniOwners.set(`${l.tunnel.vni}|${l.tunnel.port}`, l.owner);
        if (l.tunnel?.kind !== 'wireguard') continue;
        const cfg = await readConfig(tunnelTmpName('wireguard', l.owner, l.side), signal);
        if (cfg?.listenPort !== undefined) l.tunnel.port = cfg.listenPort;
      }
      return links;
    },

    async ensureTunnel(spec: TunnelSpec, opts: OpOptions = {}): Promise<TunnelState> {
      const w = normalizeTunnelSpec({ ...spec, owner: typeof spec?.owner === 'string' ? prefix + spec.owner : spec?.owner });
      return inventory.exclusive(w.owner, async () => {
        const pod = await resolver.resolve(w.end.netns);
        await assertNotPrivileged(w.end.netns, pod, w.side === 'nsc' ? 'client' : 'endpoint');
        places.add(w.end.netns).add(await tunnelPlace());
        // another scope's link (another forwarder's) is always taken; an orphan only within our scope
        const live = (o: string) => o !== w.owner && (!o.startsWith(prefix) || inventory.live(o));
        const state = await writer.ensure(w, pod, live, (o, fn) => inventory.claimOrphan(o, fn), opts.signal);
        forgetVnis(w.owner);
        if (w.tunnel.kind === 'vxlan') vniOwners.set(`${w.tunnel.vni}|${w.tunnel.port}`, w.owner);
        inventory.hold(w.owner);
        return state;
      });
    },

    async removeTunnel(spec: TunnelSpec, opts: OpOptions = {}): Promise<void> {
      const w = normalizeTunnelSpec({ ...spec, owner: typeof spec?.owner === 'string' ? prefix + spec.owner : spec?.owner });
      inventory.release(w.owner);
      return inventory.exclusive(w.owner, async () => {
        const pod = await resolver.tryResolve(w.end.netns);
        await writer.remove(w.owner, w.side, w.end.name, pod, opts.signal);
        forgetVnis(w.owner);
      });
    },

    async tunnelPrivateKey(owner: string, opts: OpOptions = {}): Promise<string | undefined> {
      for (const side of ['nsc', 'nse'] as const) {
        const cfg = await readConfig(tunnelTmpName('wireguard', prefix + owner, side), opts.signal);
        if (cfg?.privateKey) return cfg.privateKey;
      }
      return undefined;
    },
  };
}
