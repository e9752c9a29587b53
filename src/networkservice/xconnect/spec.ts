/**
 * What xconnect asks of the data plane for one connection, from the two mechanisms a forwarder holds —
 * the NSC side (`connection.mechanism`, selected by `mechanisms`) and the NSE side (the next hop's answer,
 * kept by `mechanism-translation`) — and the IP context. Three shapes:
 * - KERNEL ↔ KERNEL (both pods on this node): a veth pair (`PairSpec`).
 * - KERNEL ↔ VXLAN/WIREGUARD (forwarder-A, client's node): the client's end of a tunnel (`TunnelSpec`,
 *   side `nsc`): the NSC's netns and name, the NSC addresses and routes; the tunnel's parameters from the
 *   remote mechanism the far side answered with (`src_*` are ours, `dst_*` the peer's).
 * - VXLAN/WIREGUARD ↔ KERNEL (forwarder-B, endpoint's node): the endpoint's end (side `nse`): the NSE's
 *   netns and name, the NSE addresses and routes; `dst_*` are ours, `src_*` the peer's.
 * The MTU is the connection's (or DEFAULT_MTU) lowered to the remote mechanism's `MTU`. Every missing or
 * malformed parameter is an `InvalidArgumentError` naming it; an answer with a mechanism type that was
 * not offered names that type. Pure.
 */
import type { Connection, Mechanism } from '../../api/gen/connection.js';
import {
  MECH_KERNEL,
  MECH_VXLAN,
  MECH_WIREGUARD,
  PARAM_DST_IP,
  PARAM_DST_PORT,
  PARAM_DST_PUBLIC_KEY,
  PARAM_INODE_URL,
  PARAM_NAME,
  PARAM_SRC_IP,
  PARAM_SRC_PORT,
  PARAM_SRC_PUBLIC_KEY,
} from '../../api/constants.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { endsFromIpContext } from '../../dataplane/ipcontext.js';
import type { PairSpec, Side, TunnelSpec, VxlanTunnelSpec, WireguardTunnelSpec } from '../../dataplane/types.js';
import { ipParam, mtuParam, portParam } from '../mechanisms/common/index.js';
import { vniParam } from '../mechanisms/vxlan/index.js';
import { checkKey, type WireguardEnd } from '../mechanisms/wireguard/index.js';

export const DEFAULT_MTU = 1500;

export type XconnectSpec = { readonly kind: 'pair'; readonly spec: PairSpec } | { readonly kind: 'tunnel'; readonly spec: TunnelSpec };

/** What this forwarder holds besides the mechanisms: its WireGuard ends and what it offered downstream. */
export interface LocalParts {
  /** forwarder-A's WireGuard end of this connection. */
  readonly wireguardClient?: WireguardEnd;
  /** forwarder-B's WireGuard end of this connection. */
  readonly wireguardServer?: WireguardEnd;
  /** Mechanism types sent to the next hop (`filter-mechanisms`); undefined = not recorded. */
  readonly offered?: readonly string[];
  /** Build what a removal needs even when the WireGuard end is gone (after a restart). */
  readonly forRemoval?: boolean;
}

const SUPPORTED = [MECH_KERNEL, MECH_VXLAN, MECH_WIREGUARD].join(', ');

export function isRemote(m: Mechanism | undefined): boolean {
  return m?.type === MECH_VXLAN || m?.type === MECH_WIREGUARD;
}

export function kernelParams(m: Mechanism | undefined, side: Side): { netns: string; name: string } {
  if (!m || m.type !== MECH_KERNEL) throw new InvalidArgumentError(`${side}.mechanism.type`, m?.type ?? '', `not supported here (supported: ${SUPPORTED}; one side must be ${MECH_KERNEL})`);
  const netns = m.parameters[PARAM_INODE_URL] ?? '';
  const name = m.parameters[PARAM_NAME] ?? '';
  if (!netns) throw new InvalidArgumentError(`${side}.mechanism.parameters.${PARAM_INODE_URL}`, netns, 'the netns of the interface is required');
  if (!name) throw new InvalidArgumentError(`${side}.mechanism.parameters.${PARAM_NAME}`, name, 'the interface name is required');
  return { netns, name };
}

/** Which parameters are this node's: on forwarder-A (side nsc) the `src_*`, on forwarder-B (side nse) the `dst_*`. */
function keysOf(side: Side) {
  const src = { ip: PARAM_SRC_IP, port: PARAM_SRC_PORT, key: PARAM_SRC_PUBLIC_KEY };
  const dst = { ip: PARAM_DST_IP, port: PARAM_DST_PORT, key: PARAM_DST_PUBLIC_KEY };
  const [own, peer] = side === 'nsc' ? [src, dst] : [dst, src];
  return { ownIp: own.ip, peerIp: peer.ip, ownPort: own.port, peerPort: peer.port, peerKey: peer.key };
}

function vxlanTunnel(m: Mechanism, side: Side): VxlanTunnelSpec {
  const vni = vniParam(m);
  if (vni === undefined) throw new InvalidArgumentError(`${MECH_VXLAN}.parameters.vni`, '', 'required');
  const port = portParam(m, PARAM_DST_PORT);
  const srcPort = portParam(m, PARAM_SRC_PORT);
  if (srcPort !== port) throw new InvalidArgumentError(`${MECH_VXLAN}.parameters.${PARAM_DST_PORT}`, port, `differs from ${PARAM_SRC_PORT} ${srcPort}; a VXLAN device uses one port`);
  const k = keysOf(side);
  return { kind: 'vxlan', vni, localIp: ipParam(m, k.ownIp), remoteIp: ipParam(m, k.peerIp), port };
}

function wireguardTunnel(m: Mechanism, side: Side, end: WireguardEnd | undefined, forRemoval: boolean): WireguardTunnelSpec {
  const k = keysOf(side);
  const listenPort = portParam(m, k.ownPort);
  if (!end && !forRemoval) throw new InvalidArgumentError(`${MECH_WIREGUARD}.parameters.${k.ownPort}`, listenPort, 'this forwarder holds no WireGuard end for the connection');
  if (end && end.port !== listenPort) throw new InvalidArgumentError(`${MECH_WIREGUARD}.parameters.${k.ownPort}`, listenPort, `this forwarder's end listens on ${end.port}`);
  return {
    kind: 'wireguard',
    privateKey: end?.privateKey ?? '',
    peerPublicKey: forRemoval ? (m.parameters[k.peerKey] ?? '') : checkKey(`${MECH_WIREGUARD}.parameters.${k.peerKey}`, m.parameters[k.peerKey]),
    localIp: ipParam(m, k.ownIp),
    listenPort,
    remoteIp: ipParam(m, k.peerIp),
    remotePort: portParam(m, k.peerPort),
  };
}

function tunnelOf(m: Mechanism, side: Side, local: LocalParts): VxlanTunnelSpec | WireguardTunnelSpec {
  if (m.type === MECH_VXLAN) return vxlanTunnel(m, side);
  const end = side === 'nsc' ? local.wireguardClient : local.wireguardServer;
  return wireguardTunnel(m, side, end, local.forRemoval ?? false);
}

function lowered(base: number, m: Mechanism): number {
  const mtu = mtuParam(m);
  return mtu === undefined ? base : Math.min(base, mtu);
}

/** The data-plane spec of connection `conn` (see the file comment). */
export function specFor(conn: Connection, nseMech: Mechanism | undefined, local: LocalParts = {}): XconnectSpec {
  const nscMech = conn.mechanism;
  if (nseMech && local.offered && !local.offered.includes(nseMech.type)) {
    throw new InvalidArgumentError('nse.mechanism.type', nseMech.type, `the next hop answered with a mechanism this forwarder did not offer (offered: ${local.offered.join(', ') || 'none'})`);
  }
  const ends = endsFromIpContext(conn.context?.ipContext);
  const mtu = conn.context?.MTU || DEFAULT_MTU;
  if (isRemote(nscMech) && isRemote(nseMech)) throw new InvalidArgumentError('nse.mechanism.type', nseMech!.type, `${nscMech!.type} on the client side needs ${MECH_KERNEL} on the endpoint side`);
  if (isRemote(nseMech)) {
    const nsc = kernelParams(nscMech, 'nsc');
    const spec: TunnelSpec = { owner: conn.id, side: 'nsc', end: { ...nsc, ...ends.nsc }, tunnel: tunnelOf(nseMech!, 'nsc', local), mtu: lowered(mtu, nseMech!) };
    return { kind: 'tunnel', spec };
  }
  if (isRemote(nscMech)) {
    const nse = kernelParams(nseMech, 'nse');
    const spec: TunnelSpec = { owner: conn.id, side: 'nse', end: { ...nse, ...ends.nse }, tunnel: tunnelOf(nscMech!, 'nse', local), mtu: lowered(mtu, nscMech!) };
    return { kind: 'tunnel', spec };
  }
  const nsc = kernelParams(nscMech, 'nsc');
  const nse = kernelParams(nseMech, 'nse');
  return { kind: 'pair', spec: { owner: conn.id, nsc: { ...nsc, ...ends.nsc }, nse: { ...nse, ...ends.nse }, mtu } };
}
