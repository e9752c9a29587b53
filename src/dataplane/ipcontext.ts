/**
 * IP context → the addresses and routes of both ends of a connection's interfaces (nsm-spec §2.5,
 * upstream `api:ipcontext_helpers.go` and `sdk-kernel:ipcontext/routes/common.go`). Pure; the forwarder
 * element calls it and passes the result into `DataPlane.ensure`.
 *
 * - NSC end gets `srcIpAddrs`, NSE end gets `dstIpAddrs`.
 * - Link routes (scope link): NSC side, each dst net not contained in a src net; NSE side, each src net
 *   not contained in a dst net.
 * - `srcRoutes` go to the NSC side: without a `nextHop` and with a prefix outside the dst nets of its
 *   family, the next hop is the first dst address of that family (onlink). `dstRoutes` symmetric on the
 *   NSE side with the src addresses. Later routes replace earlier ones with the same prefix (the kernel
 *   installs them with `route replace`).
 */
import type { IPContext, Route } from '../api/gen/connectioncontext.js';
import { containsCidr, formatCidr, formatIp, parseAddressOrCidr } from '../api/cidr.js';
import { normAddr, normRoute } from './spec.js';
import type { RouteSpec } from './types.js';

export interface EndIp {
  addrs: string[];
  routes: RouteSpec[];
}

export type IpContextInput = Partial<Pick<IPContext, 'srcIpAddrs' | 'dstIpAddrs' | 'srcRoutes' | 'dstRoutes'>>;

function endFor(ownAddrs: string[], peerAddrs: string[], extra: Route[], fieldOwn: string, fieldPeer: string, fieldRoutes: string): EndIp {
  const own = ownAddrs.map((a, i) => parseAddressOrCidr(a, `${fieldOwn}[${i}]`));
  const ownText = ownAddrs.map((a, i) => normAddr(a, `${fieldOwn}[${i}]`).cidr);
  const peer = peerAddrs.map((a, i) => parseAddressOrCidr(a, `${fieldPeer}[${i}]`));
  const routes = new Map<string, RouteSpec>();
  const put = (r: RouteSpec) => {
    routes.delete(r.prefix);
    routes.set(r.prefix, r);
  };
  for (const p of peer) {
    if (!own.some((o) => containsCidr(o, p))) put({ prefix: formatCidr(p) });
  }
  extra.forEach((r, i) => {
    const field = `${fieldRoutes}[${i}]`;
    const want = normRoute(r.prefix, r.nextHop || undefined, field);
    if (want.via) return put({ prefix: want.prefix, via: want.via });
    const target = parseAddressOrCidr(want.prefix, `${field}.prefix`);
    const sameFamily = peer.filter((p) => p.family === want.family);
    const inside = sameFamily.some((p) => containsCidr(p, target));
    const first = sameFamily[0];
    if (!inside && first) put({ prefix: want.prefix, via: formatIp(first.ip, first.family) });
    else put({ prefix: want.prefix });
  });
  return { addrs: ownText, routes: [...routes.values()] };
}

/** The addresses and routes of the NSC end and of the NSE end for an IP context. */
export function endsFromIpContext(ctx: IpContextInput | undefined): { nsc: EndIp; nse: EndIp } {
  const src = ctx?.srcIpAddrs ?? [];
  const dst = ctx?.dstIpAddrs ?? [];
  return {
    nsc: endFor(src, dst, ctx?.srcRoutes ?? [], 'srcIpAddrs', 'dstIpAddrs', 'srcRoutes'),
    nse: endFor(dst, src, ctx?.dstRoutes ?? [], 'dstIpAddrs', 'srcIpAddrs', 'dstRoutes'),
  };
}
