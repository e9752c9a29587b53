/**
 * VXLAN mechanism elements (class REMOTE, payload ETHERNET): a kernel VXLAN device between two nodes'
 * tunnel IPs carries the connection between forwarder-A (client's node) and forwarder-B (endpoint's node).
 *
 * `vxlanClient(deps, options)` — forwarder-A's outgoing chain (a sub-element of `mechanismsClient`):
 * appends `{REMOTE, VXLAN, {src_ip, src_port, MTU}}` when the connection's payload is ETHERNET (or it
 * already uses VXLAN) and the next hop is not local (`unix:`/`inode:`; `filter-mechanisms` drops it
 * there anyway). `MTU` is the underlay MTU minus the overlay's cost (50 bytes over IPv4, 70 over IPv6).
 *
 * `vxlanServer(deps, options)` — forwarder-B's VXLAN sub-element of `mechanismsServer`: checks the
 * client's `src_ip` (an IP of the tunnel IP's family) and `src_port` (must be this node's port: one
 * kernel device uses one port for both directions), sets `dst_ip`, `dst_port`, lowers `MTU` to what its
 * side allows, and picks the VNI as upstream's vni server: a VNI the request already carries is kept
 * (refresh, and a re-Request after a forwarder restart); otherwise a random 24-bit VNI, even when the
 * client's tunnel IP orders before ours and odd otherwise, so the two directions between two nodes never
 * collide, and not one this forwarder holds with that peer (nor one of `reservedVnis`, the VNIs found in
 * the kernel at start). The VNI is kept per connection; Close (and a failed first Request) gives it back.
 *
 * Mirrors sdk-vpp `mechanisms/vxlan` (client, server, `vni`, `mtu`). No background work.
 */
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import type { Mechanism } from '../../../api/gen/connection.js';
import { CLS_REMOTE, MECH_VXLAN, PARAM_DST_IP, PARAM_DST_PORT, PARAM_MTU, PARAM_SRC_IP, PARAM_SRC_PORT, PARAM_VNI, PAYLOAD_ETHERNET, VXLAN_DEFAULT_PORT } from '../../../api/constants.js';
import type { NetworkServiceElement } from '../../../core/chain.js';
import { InvalidArgumentError, ResourceExhaustedError } from '../../../core/errors.js';
import { StateKey } from '../../../core/state.js';
import { CLIENT_URL } from '../../client-url/index.js';
import { DEFAULT_UNDERLAY_MTU, compareIps, ipParam, isLocalUrl, lowerMtu, portParam, tunnelMtu } from '../common/index.js';

export const VXLAN_CLIENT = 'vxlan-client';
export const VXLAN_SERVER = 'vxlan-server';
/** Largest VNI (24 bits). */
export const MAX_VNI = 0xffffff;
/** Random draws before giving up on a free VNI (the space is 8M per parity; only a full one fails). */
export const VNI_DRAWS = 64;

/** The VNI forwarder-B chose for this connection. */
export const VXLAN_VNI = new StateKey<number>('vxlan.vni');

export interface VxlanDeps {
  /** This node's tunnel IP (NSM_TUNNEL_IP). */
  readonly tunnelIp: string;
  /** Random integer in [0, n) (tests). */
  readonly randomInt?: (n: number) => number;
}

export interface VxlanOptions {
  /** UDP port of both ends (default VXLAN_DEFAULT_PORT). */
  readonly port?: number;
  /** MTU of the underlay (default DEFAULT_UNDERLAY_MTU). */
  readonly underlayMtu?: number;
  /** VNIs not to choose (found in the kernel at start). */
  readonly reservedVnis?: Iterable<number>;
}

function checkDeps(deps: VxlanDeps, options: VxlanOptions): { port: number; mtu: number } {
  if (isIP(deps.tunnelIp) === 0) throw new InvalidArgumentError('tunnelIp', deps.tunnelIp, 'not an IP address');
  const port = options.port ?? VXLAN_DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError('port', port, 'not a UDP port (1–65535)');
  return { port, mtu: tunnelMtu(MECH_VXLAN, deps.tunnelIp, options.underlayMtu ?? DEFAULT_UNDERLAY_MTU) };
}

/** The VNI parameter of `m` (1–MAX_VNI), undefined when absent. */
export function vniParam(m: Mechanism): number | undefined {
  const v = m.parameters?.[PARAM_VNI];
  if (v === undefined || v === '') return undefined;
  const n = /^\d{1,8}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= MAX_VNI)) throw new InvalidArgumentError(`${MECH_VXLAN}.parameters.${PARAM_VNI}`, v, `not a VNI (1–${MAX_VNI})`);
  return n;
}

/** Upstream's rule: forwarder-B picks even VNIs when the client's tunnel IP orders before (or equals) its own. */
export function evenVni(srcIp: string, dstIp: string): boolean {
  return compareIps(srcIp, dstIp) <= 0;
}

/** A random VNI of the parity `even` asks for (never 0). */
export function randomVni(even: boolean, rnd: (n: number) => number = randomInt): number {
  const half = rnd((MAX_VNI + 1) / 2);
  const vni = even ? 2 * half : 2 * half + 1;
  return vni === 0 ? 2 : vni;
}

export function vxlanClient(deps: VxlanDeps, options: VxlanOptions = {}): NetworkServiceElement {
  const { port, mtu } = checkDeps(deps, options);
  return {
    name: VXLAN_CLIENT,
    requires: ['state'],
    async request(req, ctx, next) {
      const conn = req.connection;
      const current = conn?.mechanism?.type === MECH_VXLAN ? conn.mechanism : undefined;
      if (isLocalUrl(ctx.state.get(CLIENT_URL)) || (!current && conn?.payload !== PAYLOAD_ETHERNET)) return next.request(req, ctx);
      const params = { [PARAM_SRC_IP]: deps.tunnelIp, [PARAM_SRC_PORT]: String(port), [PARAM_MTU]: String(mtu) };
      if (current) Object.assign(current.parameters, params);
      req.mechanismPreferences.push({ cls: CLS_REMOTE, type: MECH_VXLAN, parameters: { ...params } });
      return next.request(req, ctx);
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}

export function vxlanServer(deps: VxlanDeps, options: VxlanOptions = {}): NetworkServiceElement {
  const { port, mtu } = checkDeps(deps, options);
  const rnd = deps.randomInt ?? randomInt;
  const reserved = new Set(options.reservedVnis ?? []);
  /** `<peer ip>/<vni>` → the connection holding it. */
  const held = new Map<string, string>();
  const key = (peer: string, vni: number) => `${peer}/${vni}`;
  const release = (peer: string, vni: number, id: string) => {
    if (held.get(key(peer, vni)) === id) held.delete(key(peer, vni));
  };

  const choose = (src: string, id: string): number => {
    const even = evenVni(src, deps.tunnelIp);
    for (let i = 0; i < VNI_DRAWS; i++) {
      const vni = randomVni(even, rnd);
      if (!reserved.has(vni) && !held.has(key(src, vni))) return vni;
    }
    throw new ResourceExhaustedError(`no free ${even ? 'even' : 'odd'} VNI with ${src} after ${VNI_DRAWS} draws (connection ${id})`);
  };

  return {
    name: VXLAN_SERVER,
    requires: ['state'],
    async request(req, ctx, next) {
      const conn = req.connection!;
      const m = conn.mechanism;
      if (!m || m.type !== MECH_VXLAN) return next.request(req, ctx);
      const src = ipParam(m, PARAM_SRC_IP);
      if (isIP(src) !== isIP(deps.tunnelIp)) throw new InvalidArgumentError(`${MECH_VXLAN}.parameters.${PARAM_SRC_IP}`, src, `not of the address family of this node's tunnel IP ${deps.tunnelIp}`);
      const srcPort = portParam(m, PARAM_SRC_PORT);
      if (srcPort !== port) throw new InvalidArgumentError(`${MECH_VXLAN}.parameters.${PARAM_SRC_PORT}`, srcPort, `this node's VXLAN port is ${port}; both ends of a device use one port`);
      const before = ctx.state.get(VXLAN_VNI);
      const asked = vniParam(m);
      const vni = asked ?? before ?? choose(src, conn.id);
      const owner = held.get(key(src, vni));
      if (owner !== undefined && owner !== conn.id) throw new InvalidArgumentError(`${MECH_VXLAN}.parameters.${PARAM_VNI}`, vni, `held by another connection with ${src}`);
      if (before !== undefined && before !== vni) release(src, before, conn.id);
      held.set(key(src, vni), conn.id);
      ctx.state.set(VXLAN_VNI, vni);
      m.parameters[PARAM_DST_IP] = deps.tunnelIp;
      m.parameters[PARAM_DST_PORT] = String(port);
      m.parameters[PARAM_VNI] = String(vni);
      lowerMtu(m, mtu);
      try {
        return await next.request(req, ctx);
      } catch (err) {
        if (before === undefined) {
          release(src, vni, conn.id);
          ctx.state.delete(VXLAN_VNI);
        }
        throw err;
      }
    },
    async close(conn, ctx, next) {
      const m = conn.mechanism;
      try {
        return await next.close(conn, ctx);
      } finally {
        const vni = ctx.state.delete(VXLAN_VNI) ?? (m?.type === MECH_VXLAN ? safe(() => vniParam(m)) : undefined);
        const src = m?.parameters?.[PARAM_SRC_IP];
        if (vni !== undefined && src) release(src, vni, conn.id);
      }
    },
  };
}

function safe<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
