/**
 * The Linux data plane's decisions for a tunnel end (VXLAN or WireGuard), as pure functions of what the
 * kernel (and, for WireGuard, the device's UAPI `get=1`) reported: the batch lines of a fresh create in
 * the tunnel netns and in the pod netns, and whether an existing end is converged in place (pod-side
 * lines, WireGuard settings) or recreated (gone, not ours, or VXLAN parameters that a device cannot
 * change). `tunnel.ts` runs them; nothing here does I/O.
 */
import { checkFree, parseAlias } from '../spec.js';
import { linkKindOf, type WantTunnel, type WantVxlan } from '../tunnel-spec.js';
import type { BatchLine } from './ip.js';
import { L, configureLines, convergeLines, type KLink, type NetnsState } from './state.js';
import { wgDiff, type WgConfig } from './wireguard.js';

export type TunnelPlan =
  /** No link with the name: create. */
  | { kind: 'create' }
  /** A link in the way (this owner's of the wrong kind or parameters, or an orphan of `owner`): delete it, then create. */
  | { kind: 'recreate'; link: KLink; owner: string; why: string }
  /** Ours and healthy: converge in place (`wireguard` set when the device's settings differ). */
  | { kind: 'converge'; link: KLink; lines: BatchLine[]; wireguard: string[]; actions: string[] };

/**
 * The line that creates the VXLAN device `tmp` in the tunnel netns. Its MAC is derived from the owner and
 * side (`endMac`), so a recreated end keeps it and the peer pod's neighbour entry for it stays right (a
 * new random MAC would black-hole traffic until the peer's entry went stale).
 */
export function vxlanCreateLine(tmp: string, t: WantVxlan, mac: string): BatchLine {
  return { step: `create vxlan (vni ${t.vni})`, cmd: `link add ${tmp} address ${mac} type vxlan id ${t.vni} local ${t.localIp} remote ${t.remoteIp} dstport ${t.port}` };
}

/** Lines in the tunnel netns after the device exists: our alias (so inventory finds a leftover), then the move into the pod. */
export function moveLines(tmp: string, alias: string, podPath: string): BatchLine[] {
  return [L.alias(tmp, alias), { step: 'move into pod netns', cmd: `link set dev ${tmp} netns ${podPath}` }];
}

/** Lines in the pod netns: rename, MTU, alias, addresses, up, routes, and a `link show` of the end. */
export function podLines(tmp: string, w: WantTunnel): BatchLine[] {
  return [
    { step: `rename to ${w.end.name}`, cmd: `link set dev ${tmp} name ${w.end.name}` },
    ...(w.mtu !== undefined ? [L.mtu(w.end.name, w.mtu)] : []),
    ...configureLines(w.end),
    L.show(w.end.name),
  ];
}

function vxlanDiff(link: KLink, t: WantVxlan): string | undefined {
  const v = link.vxlan;
  if (!v) return 'no vxlan parameters';
  const diffs: string[] = [];
  if (v.vni !== t.vni) diffs.push(`vni ${v.vni} → ${t.vni}`);
  if (v.port !== t.port) diffs.push(`port ${v.port} → ${t.port}`);
  if (v.local !== t.localIp) diffs.push(`local ${v.local ?? '-'} → ${t.localIp}`);
  if (v.remote !== t.remoteIp) diffs.push(`remote ${v.remote ?? '-'} → ${t.remoteIp}`);
  return diffs.length ? diffs.join(', ') : undefined;
}

/**
 * What to do with the pod netns `s` (read by name: the end's link alone) for `w`. `wg` is the device's
 * config when the link is our WireGuard end and its process answered. Throws AlreadyExistsError when the
 * name is taken by a link that is not nsm-ts's or belongs to another live connection.
 */
export function planTunnel(w: WantTunnel, s: NetnsState, wg: WgConfig | undefined, live: (owner: string) => boolean): TunnelPlan {
  const link = s.links.get(w.end.name);
  checkFree(link, w.end, w.owner, live);
  if (!link) return { kind: 'create' };
  const a = parseAlias(link.alias)!;
  if (a.owner !== w.owner || a.side !== w.side) return { kind: 'recreate', link, owner: a.owner, why: `stale link ${link.name} (${link.alias})` };
  const want = linkKindOf(w.tunnel.kind);
  if (link.kind !== want) return { kind: 'recreate', link, owner: a.owner, why: `${link.kind ?? 'unknown'} link ${link.name} is not a ${w.tunnel.kind} end` };
  let wireguard: string[] = [];
  if (w.tunnel.kind === 'vxlan') {
    const d = vxlanDiff(link, w.tunnel);
    if (d) return { kind: 'recreate', link, owner: a.owner, why: `vxlan parameters changed (${d})` };
  } else {
    if (!wg) return { kind: 'recreate', link, owner: a.owner, why: 'no wireguard-go answers for it' };
    wireguard = wgDiff(wg, w.tunnel);
  }
  const lines = convergeLines(w.end, link, s, w.mtu);
  return { kind: 'converge', link, lines, wireguard, actions: [...wireguard, ...lines.map((l) => `${w.side}: ${l.step}`)] };
}
