/**
 * IPAM server elements of an endpoint (NSE), placed after the common endpoint elements and before the
 * mechanism elements.
 *
 * `point2pointIpamServer(prefixes)` — point-to-point address pairs from a pool of CIDRs, minus the request's
 * `excluded_prefixes`. For a connection id it does not know yet it first *recovers* the addresses carried by
 * the request (`src_ip_addrs` / `dst_ip_addrs`, when both are in one pool and free), else it takes the two
 * lowest free addresses: the first becomes the dst (NSE side), the second the src (NSC side). Entries are
 * `/32` or `/128`, appended (never replacing what is there), with `src_routes {prefix: dst}` and
 * `dst_routes {prefix: src}`. Repeated requests of the same connection id keep the same addresses (unless
 * they became excluded); Close frees them; a failed first request frees them too.
 * Upstream allocates one pair per prefix list; here one pair is allocated **per IP family** present in the
 * prefixes (prefixes of the same family are alternatives, tried in order), so a v4+v6 group is dual stack.
 * Mirrors `sdk/pkg/networkservice/ipam/point2pointipam`.
 *
 * `groupIpamServer(groups)` — one point-to-point IPAM per `NSM_CIDR_PREFIX` group (`[a,b],c`), chained;
 * with `policy: 'strict'` a `strictIpamServer` over all prefixes runs first. Mirrors `.../ipam/groupipam`.
 *
 * `strictIpamServer(prefixes)` — if any requested src/dst address lies outside all of this NSE's prefixes,
 * the request's addresses and routes are reset before allocation (upstream resets the whole ip context;
 * `excluded_prefixes` are kept here because they carry the cluster's reservations). Mirrors `.../ipam/strictipam`.
 *
 * The allocation table is element state keyed by connection id (it owns a shared resource, the pool); no
 * background work.
 */
import type { Connection } from '../../api/gen/connection.js';
import type { IPContext } from '../../api/gen/connectioncontext.js';
import { IPContext as IPContextFns } from '../../api/gen/connectioncontext.js';
import { ipContextOf } from '../../api/helpers.js';
import { type Cidr, type IpFamily, contains, familyBits, firstAddress, formatIp, lastAddress, parseAddressOrCidr, parseCidr, tryParseCidr, tryParseIp } from '../../api/cidr.js';
import { type NetworkServiceElement, networkServiceChain } from '../../core/chain.js';
import { InvalidArgumentError, NsmError } from '../../core/errors.js';
import { IpPool, type Range, isExcluded } from './pool.js';

export const POINT2POINT_IPAM = 'point2point-ipam';
export const GROUP_IPAM = 'group-ipam';
export const STRICT_IPAM = 'strict-ipam';
/** Field named in errors about the configured prefixes. */
export const DEFAULT_PREFIX_FIELD = 'NSM_CIDR_PREFIX';
export const DEFAULT_IPAM_POLICY: IpamPolicy = 'polite';
export const IPAM_POLICIES = ['polite', 'strict'] as const;
export type IpamPolicy = (typeof IPAM_POLICIES)[number];

/** No free address pair is left in any pool of a family the IPAM serves. */
export class IpamExhaustedError extends NsmError {
  override name = 'IpamExhaustedError';
}

export interface Point2PointIpamOptions {
  /** Name of the configuration field the prefixes come from (for error messages). */
  readonly field?: string;
}

interface Allocation {
  readonly pool: IpPool;
  readonly src: bigint;
  readonly dst: bigint;
}

function hostString(v: bigint, family: IpFamily): string {
  return `${formatIp(v, family)}/${familyBits(family)}`;
}

function parsePrefixes(prefixes: readonly string[], field: string): Cidr[] {
  if (!Array.isArray(prefixes) || prefixes.length === 0) throw new InvalidArgumentError(field, prefixes, 'at least one CIDR prefix is required');
  return prefixes.map((p) => parseCidr(p, field));
}

function excludedRanges(ipc: IPContext): Map<IpFamily, Range[]> {
  const out = new Map<IpFamily, Range[]>([[4, []], [6, []]]);
  for (const p of ipc.excludedPrefixes) {
    const c = parseAddressOrCidr(p, 'excluded_prefixes');
    out.get(c.family)!.push([firstAddress(c), lastAddress(c)]);
  }
  return out;
}

/** The address part of an ip-context entry (`a.b.c.d/32` or a bare address). */
function addressOf(entry: string): { family: IpFamily; value: bigint } | undefined {
  const c = tryParseCidr(entry);
  if (c) return { family: c.family, value: c.ip };
  return tryParseIp(entry);
}

function addUnique(list: string[], v: string): void {
  if (!list.includes(v)) list.push(v);
}

function addRoute(ipc: IPContext, which: 'srcRoutes' | 'dstRoutes', prefix: string): void {
  if (!ipc[which].some((r) => r.prefix === prefix)) ipc[which].push({ prefix, nextHop: '' });
}

function removeEntry(list: string[], v: string): void {
  const i = list.indexOf(v);
  if (i >= 0) list.splice(i, 1);
}

function removeRoute(ipc: IPContext, which: 'srcRoutes' | 'dstRoutes', prefix: string): void {
  const i = ipc[which].findIndex((r) => r.prefix === prefix);
  if (i >= 0) ipc[which].splice(i, 1);
}

export function point2pointIpamServer(prefixes: readonly string[], options: Point2PointIpamOptions = {}): NetworkServiceElement {
  const config = Object.freeze({ field: options.field ?? DEFAULT_PREFIX_FIELD });
  const pools = parsePrefixes(prefixes, config.field).map((c) => new IpPool(c));
  const families = [...new Set(pools.map((p) => p.family))];
  const allocations = new Map<string, Allocation[]>();

  const free = (allocs: readonly Allocation[]): void => {
    for (const a of allocs) {
      a.pool.release(a.src);
      a.pool.release(a.dst);
    }
  };

  const recover = (family: IpFamily, ipc: IPContext, excluded: readonly Range[]): Allocation | undefined => {
    const pick = (entries: readonly string[], pool: IpPool, not?: bigint): bigint | undefined => {
      for (const e of entries) {
        const a = addressOf(e);
        if (a && a.family === family && a.value !== not && pool.contains(a.value) && pool.isFree(a.value) && !isExcluded(a.value, excluded)) return a.value;
      }
      return undefined;
    };
    for (const pool of pools.filter((p) => p.family === family)) {
      const src = pick(ipc.srcIpAddrs, pool);
      if (src === undefined) continue;
      const dst = pick(ipc.dstIpAddrs, pool, src);
      if (dst === undefined) continue;
      pool.take(src);
      pool.take(dst);
      return { pool, src, dst };
    }
    return undefined;
  };

  const pullPair = (family: IpFamily, excluded: readonly Range[]): Allocation | undefined => {
    for (const pool of pools.filter((p) => p.family === family)) {
      const dst = pool.lowestFree(excluded);
      if (dst === undefined) continue;
      pool.take(dst);
      const src = pool.lowestFree(excluded);
      if (src === undefined) {
        pool.release(dst);
        continue;
      }
      pool.take(src);
      return { pool, src, dst };
    }
    return undefined;
  };

  const allocate = (ipc: IPContext, excluded: Map<IpFamily, Range[]>): Allocation[] => {
    const out: Allocation[] = [];
    for (const family of families) {
      const ex = excluded.get(family)!;
      const a = recover(family, ipc, ex) ?? pullPair(family, ex);
      if (!a) {
        free(out);
        throw new IpamExhaustedError(
          `no free IPv${family} address pair in ${pools.filter((p) => p.family === family).join(', ')} (excluded: ${ipc.excludedPrefixes.join(', ') || 'none'})`,
        );
      }
      out.push(a);
    }
    return out;
  };

  return {
    name: POINT2POINT_IPAM,
    provides: ['ipam'],
    async request(req, ctx, next) {
      const conn = req.connection as Connection;
      const ipc = ipContextOf(conn);
      const excluded = excludedRanges(ipc);
      let allocs = allocations.get(conn.id);
      let loaded = allocs !== undefined;
      if (allocs && allocs.some((a) => isExcluded(a.src, excluded.get(a.pool.family)!) || isExcluded(a.dst, excluded.get(a.pool.family)!))) {
        for (const a of allocs) {
          const src = hostString(a.src, a.pool.family);
          const dst = hostString(a.dst, a.pool.family);
          removeEntry(ipc.srcIpAddrs, src);
          removeEntry(ipc.dstIpAddrs, dst);
          removeRoute(ipc, 'srcRoutes', dst);
          removeRoute(ipc, 'dstRoutes', src);
        }
        free(allocs);
        allocations.delete(conn.id);
        allocs = undefined;
        loaded = false;
      }
      if (!allocs) {
        allocs = allocate(ipc, excluded);
        allocations.set(conn.id, allocs);
      }
      for (const a of allocs) {
        const src = hostString(a.src, a.pool.family);
        const dst = hostString(a.dst, a.pool.family);
        addUnique(ipc.srcIpAddrs, src);
        addRoute(ipc, 'srcRoutes', dst);
        addUnique(ipc.dstIpAddrs, dst);
        addRoute(ipc, 'dstRoutes', src);
      }
      ctx.log.debug({ element: POINT2POINT_IPAM, connId: conn.id, src: ipc.srcIpAddrs, dst: ipc.dstIpAddrs, recovered: !loaded }, 'addresses assigned');
      try {
        return await next.request(req, ctx);
      } catch (err) {
        if (!loaded) {
          free(allocs);
          allocations.delete(conn.id);
        }
        throw err;
      }
    },
    async close(conn, ctx, next) {
      const allocs = allocations.get(conn.id);
      if (allocs) {
        allocations.delete(conn.id);
        free(allocs);
      }
      return next.close(conn, ctx);
    },
  };
}

/**
 * Parses the `NSM_CIDR_PREFIX` group syntax: `a,b` are separate groups, `[a,b],c` puts a and b in one
 * group. Each entry must be a valid CIDR; errors name `field` and the value.
 */
export function parseCidrGroups(value: string, field = DEFAULT_PREFIX_FIELD): string[][] {
  const fail = (reason: string): never => {
    throw new InvalidArgumentError(field, value, reason);
  };
  if (typeof value !== 'string' || value.trim() === '') fail('at least one CIDR prefix is required');
  const groups: string[][] = [];
  let current: string[] | undefined;
  let token = '';
  const flushToken = (): void => {
    const t = token.trim();
    token = '';
    if (t === '') return;
    if (!tryParseCidr(t)) fail(`"${t}" is not a valid CIDR`);
    if (current) current.push(t);
    else groups.push([t]);
  };
  for (const ch of value) {
    if (ch === '[') {
      if (current) fail('nested "[" is not allowed');
      if (token.trim() !== '') fail('"[" must start a new entry');
      current = [];
    } else if (ch === ']') {
      if (!current) fail('unmatched "]"');
      flushToken();
      if (current!.length === 0) fail('empty group "[]"');
      groups.push(current!);
      current = undefined;
    } else if (ch === ',') {
      flushToken();
    } else {
      token += ch;
    }
  }
  if (current) fail('unterminated "["');
  flushToken();
  if (groups.length === 0) fail('at least one CIDR prefix is required');
  return groups;
}

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
        ctx.log.debug({ element: STRICT_IPAM, src: ipc.srcIpAddrs, dst: ipc.dstIpAddrs }, 'requested addresses outside the pools: ip context reset');
        req.connection!.context!.ipContext = IPContextFns.fromPartial({ excludedPrefixes: [...ipc.excludedPrefixes] });
      }
      return next.request(req, ctx);
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}

export interface GroupIpamOptions extends Point2PointIpamOptions {
  /** `polite` (default): accept requested addresses that are in a pool; `strict`: reset them if any is not. */
  readonly policy?: IpamPolicy;
}

export function groupIpamServer(groups: readonly (readonly string[])[], options: GroupIpamOptions = {}): NetworkServiceElement {
  const config = Object.freeze({ field: options.field ?? DEFAULT_PREFIX_FIELD, policy: options.policy ?? DEFAULT_IPAM_POLICY });
  if (!IPAM_POLICIES.includes(config.policy)) throw new InvalidArgumentError('NSM_IPAM_POLICY', config.policy, `must be one of ${IPAM_POLICIES.join(', ')}`);
  if (groups.length === 0) throw new InvalidArgumentError(config.field, groups, 'at least one CIDR group is required');
  const inner: NetworkServiceElement[] = [];
  if (config.policy === 'strict') inner.push(strictIpamServer(groups.flat(), { field: config.field }));
  groups.forEach((g, i) => inner.push({ ...point2pointIpamServer(g, { field: config.field }), name: `${POINT2POINT_IPAM}-${i}` }));
  return {
    name: GROUP_IPAM,
    provides: ['ipam'],
    request: (req, ctx, next) => networkServiceChain(GROUP_IPAM, inner, { tail: next }).request(req, ctx),
    close: (conn, ctx, next) => networkServiceChain(GROUP_IPAM, inner, { tail: next }).close(conn, ctx),
  };
}
