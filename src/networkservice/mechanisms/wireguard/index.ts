/**
 * WireGuard mechanism elements (class REMOTE, payload IP): a userspace WireGuard end on each node,
 * keyed per connection, carries the connection between forwarder-A and forwarder-B.
 *
 * `wireguardClient(deps, options)` — forwarder-A's outgoing chain (a sub-element of `mechanismsClient`):
 * when the payload is IP (or the connection already uses WIREGUARD) and the next hop is not local, it
 * appends `{REMOTE, WIREGUARD, {src_ip, src_port, src_public_key, MTU}}`. Per connection it keeps a key
 * pair and a listen port (`WIREGUARD_CLIENT_END`): the private key is read back from the data plane
 * (`tunnelPrivateKey(owner)`, a restarted forwarder keeps the keys of the tunnels it adopts) before a new
 * pair is generated; the port comes from the forwarder's `PortPool` (the one the connection carried
 * before, when free). An answer with another mechanism, or a failed first Request, gives them back.
 *
 * `wireguardServer(deps, options)` — forwarder-B's WIREGUARD sub-element of `mechanismsServer`: checks
 * the client's `src_ip`, `src_port` and `src_public_key`, and answers with `dst_ip`, `dst_port`,
 * `dst_public_key` of its own per-connection end (`WIREGUARD_SERVER_END`, same rules), `MTU` lowered to
 * what its side allows. The overlay's cost is 60 bytes over IPv4, 80 over IPv6.
 *
 * Close gives the port back and forgets the keys. Mirrors sdk-vpp `mechanisms/wireguard`. No background work.
 */
import { isIP } from 'node:net';
import type { Mechanism } from '../../../api/gen/connection.js';
import {
  CLS_REMOTE,
  MECH_WIREGUARD,
  PARAM_DST_IP,
  PARAM_DST_PORT,
  PARAM_DST_PUBLIC_KEY,
  PARAM_MTU,
  PARAM_SRC_IP,
  PARAM_SRC_PORT,
  PARAM_SRC_PUBLIC_KEY,
  PAYLOAD_IP,
} from '../../../api/constants.js';
import type { NetworkServiceElement } from '../../../core/chain.js';
import type { CallContext } from '../../../core/context.js';
import { InvalidArgumentError } from '../../../core/errors.js';
import { StateKey } from '../../../core/state.js';
import type { DataPlane } from '../../../dataplane/types.js';
import { CLIENT_URL } from '../../client-url/index.js';
import { DEFAULT_UNDERLAY_MTU, ipParam, isLocalUrl, lowerMtu, portParam, tunnelMtu } from '../common/index.js';
import { checkKey, generateKeyPair, publicKeyOf } from './keys.js';
import type { PortPool } from './ports.js';

export { checkKey, generateKeyPair, publicKeyOf, type KeyPair } from './keys.js';
export { PortPool, DEFAULT_WIREGUARD_PORTS } from './ports.js';

export const WIREGUARD_CLIENT = 'wireguard-client';
export const WIREGUARD_SERVER = 'wireguard-server';

/** This forwarder's WireGuard end of one connection. */
export interface WireguardEnd {
  readonly privateKey: string;
  readonly publicKey: string;
  /** UDP port the end listens on. */
  readonly port: number;
}

/** forwarder-A's end (client side). */
export const WIREGUARD_CLIENT_END = new StateKey<WireguardEnd>('wireguard.clientEnd');
/** forwarder-B's end (server side). */
export const WIREGUARD_SERVER_END = new StateKey<WireguardEnd>('wireguard.serverEnd');

export interface WireguardDeps {
  /** This node's tunnel IP (NSM_TUNNEL_IP). */
  readonly tunnelIp: string;
  /** Where a restarted forwarder reads back the private key of a tunnel it adopted. */
  readonly dataplane: Pick<DataPlane, 'tunnelPrivateKey'>;
  /** Listen ports of this forwarder's WireGuard ends (one pool per forwarder). */
  readonly ports: PortPool;
}

export interface WireguardOptions {
  /** MTU of the underlay (default DEFAULT_UNDERLAY_MTU). */
  readonly underlayMtu?: number;
}

function checkDeps(deps: WireguardDeps, options: WireguardOptions): number {
  if (isIP(deps.tunnelIp) === 0) throw new InvalidArgumentError('tunnelIp', deps.tunnelIp, 'not an IP address');
  return tunnelMtu(MECH_WIREGUARD, deps.tunnelIp, options.underlayMtu ?? DEFAULT_UNDERLAY_MTU);
}

/** The end of connection `owner`: the key the data plane still has, else a new pair; a port from the pool. */
async function newEnd(deps: WireguardDeps, owner: string, preferredPort: string | undefined, ctx: CallContext): Promise<WireguardEnd> {
  const kept = await deps.dataplane.tunnelPrivateKey(owner, { signal: ctx.signal });
  const pair = kept ? { privateKey: kept, publicKey: publicKeyOf(kept) } : generateKeyPair();
  const port = deps.ports.take(preferredPort ? Number(preferredPort) : undefined);
  return { ...pair, port };
}

function checkPeer(m: Mechanism, tunnelIp: string): void {
  const src = ipParam(m, PARAM_SRC_IP);
  if (isIP(src) !== isIP(tunnelIp)) throw new InvalidArgumentError(`${MECH_WIREGUARD}.parameters.${PARAM_SRC_IP}`, src, `not of the address family of this node's tunnel IP ${tunnelIp}`);
  portParam(m, PARAM_SRC_PORT);
  checkKey(`${MECH_WIREGUARD}.parameters.${PARAM_SRC_PUBLIC_KEY}`, m.parameters[PARAM_SRC_PUBLIC_KEY]);
}

export function wireguardClient(deps: WireguardDeps, options: WireguardOptions = {}): NetworkServiceElement {
  const mtu = checkDeps(deps, options);
  return {
    name: WIREGUARD_CLIENT,
    requires: ['state'],
    async request(req, ctx, next) {
      const conn = req.connection!;
      const current = conn.mechanism?.type === MECH_WIREGUARD ? conn.mechanism : undefined;
      if (isLocalUrl(ctx.state.get(CLIENT_URL)) || (!current && conn.payload !== PAYLOAD_IP)) return next.request(req, ctx);
      const kept = ctx.state.get(WIREGUARD_CLIENT_END);
      const end = kept ?? (await newEnd(deps, conn.id, current?.parameters[PARAM_SRC_PORT], ctx));
      ctx.state.set(WIREGUARD_CLIENT_END, end);
      const params = { [PARAM_SRC_IP]: deps.tunnelIp, [PARAM_SRC_PORT]: String(end.port), [PARAM_SRC_PUBLIC_KEY]: end.publicKey, [PARAM_MTU]: String(mtu) };
      if (current) Object.assign(current.parameters, params);
      req.mechanismPreferences.push({ cls: CLS_REMOTE, type: MECH_WIREGUARD, parameters: { ...params } });
      const giveBack = () => {
        ctx.state.delete(WIREGUARD_CLIENT_END);
        deps.ports.release(end.port);
      };
      try {
        const out = await next.request(req, ctx);
        if (!kept && out.mechanism?.type !== MECH_WIREGUARD) giveBack();
        return out;
      } catch (err) {
        if (!kept) giveBack();
        throw err;
      }
    },
    async close(conn, ctx, next) {
      // given back once the rest of the chain (xconnect's removal of the end) is done with it
      try {
        return await next.close(conn, ctx);
      } finally {
        const end = ctx.state.delete(WIREGUARD_CLIENT_END);
        if (end) deps.ports.release(end.port);
      }
    },
  };
}

export function wireguardServer(deps: WireguardDeps, options: WireguardOptions = {}): NetworkServiceElement {
  const mtu = checkDeps(deps, options);
  return {
    name: WIREGUARD_SERVER,
    requires: ['state'],
    async request(req, ctx, next) {
      const conn = req.connection!;
      const m = conn.mechanism;
      if (!m || m.type !== MECH_WIREGUARD) return next.request(req, ctx);
      checkPeer(m, deps.tunnelIp);
      const kept = ctx.state.get(WIREGUARD_SERVER_END);
      const end = kept ?? (await newEnd(deps, conn.id, m.parameters[PARAM_DST_PORT], ctx));
      ctx.state.set(WIREGUARD_SERVER_END, end);
      m.parameters[PARAM_DST_IP] = deps.tunnelIp;
      m.parameters[PARAM_DST_PORT] = String(end.port);
      m.parameters[PARAM_DST_PUBLIC_KEY] = end.publicKey;
      lowerMtu(m, mtu);
      try {
        return await next.request(req, ctx);
      } catch (err) {
        if (!kept) {
          ctx.state.delete(WIREGUARD_SERVER_END);
          deps.ports.release(end.port);
        }
        throw err;
      }
    },
    async close(conn, ctx, next) {
      // given back once the rest of the chain (xconnect's removal of the end) is done with it
      try {
        return await next.close(conn, ctx);
      } finally {
        const end = ctx.state.delete(WIREGUARD_SERVER_END);
        if (end) deps.ports.release(end.port);
      }
    },
  };
}
