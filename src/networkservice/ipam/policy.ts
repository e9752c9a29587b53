/**
 * `strictIpamServer(prefixes)` — the `strict` IPAM policy: if any requested src/dst address lies outside
 * all of this NSE's prefixes, the request's addresses and routes are reset before allocation (upstream
 * resets the whole ip context; `excluded_prefixes` are kept here because they carry the cluster's
 * reservations). The `polite` policy is the absence of this element.
 *
 * Placement: before the point-to-point IPAMs (group-ipam puts it there). No state, no background work.
 * Mirrors `sdk/pkg/networkservice/ipam/strictipam`.
 */
import { IPContext as IPContextFns } from '../../api/gen/connectioncontext.js';
import { contains } from '../../api/cidr.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { DEFAULT_PREFIX_FIELD, type Point2PointIpamOptions, addressOf, parsePrefixes } from './ip-context.js';

export const STRICT_IPAM = 'strict-ipam';
export const IPAM_POLICIES = ['polite', 'strict'] as const;
export type IpamPolicy = (typeof IPAM_POLICIES)[number];
export const DEFAULT_IPAM_POLICY: IpamPolicy = 'polite';

export function strictIpamServer(prefixes: readonly string[], options: Point2PointIpamOptions = {}): NetworkServiceElement {
  const field = options.field ?? DEFAULT_PREFIX_FIELD;
  const nets = parsePrefixes(prefixes, field);
  const inside = (entry: string): boolean => {
    const a = addressOf(entry);
    return a !== undefined && nets.some((n) => contains(n, a));
  };
  return {
    name: STRICT_IPAM,
    async request(req, ctx, next) {
      const ipc = req.connection?.context?.ipContext;
      if (ipc && (!ipc.srcIpAddrs.every(inside) || !ipc.dstIpAddrs.every(inside))) {
        ctx.log.debug({ src: ipc.srcIpAddrs, dst: ipc.dstIpAddrs }, 'requested addresses outside the pools: ip context reset');
        req.connection!.context!.ipContext = IPContextFns.fromPartial({ excludedPrefixes: [...ipc.excludedPrefixes] });
      }
      return next.request(req, ctx);
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}
