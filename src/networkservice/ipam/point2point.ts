/**
 * `point2pointIpamServer(prefixes)` — point-to-point address pairs from a pool of CIDRs, minus the request's
 * `excluded_prefixes`. For a connection id it does not know yet it first *recovers* the addresses carried by
 * the request (`src_ip_addrs` / `dst_ip_addrs`, when both are in one pool and free), else it takes the two
 * lowest free addresses: the first becomes the dst (NSE side), the second the src (NSC side). Entries are
 * `/32` or `/128`, appended (never replacing what is there), with `src_routes {prefix: dst}` and
 * `dst_routes {prefix: src}`. Repeated requests of the same connection id keep the same addresses (unless
 * they became excluded); Close frees them; a failed first request frees them too.
 * Upstream allocates one pair per prefix list; here one pair is allocated **per IP family** present in the
 * prefixes (prefixes of the same family are alternatives, tried in order), so a v4+v6 group is dual stack.
 *
 * Placement: endpoint server chain, after the common endpoint elements, before the mechanisms. The
 * allocation table is element state keyed by connection id (it owns a shared resource, the pool); no
 * background work. Mirrors `sdk/pkg/networkservice/ipam/point2pointipam`.
 */
import type { Connection } from '../../api/gen/connection.js';
import type { IPContext } from '../../api/gen/connectioncontext.js';
import { ipContextOf } from '../../api/helpers.js';
import type { IpFamily } from '../../api/cidr.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { ResourceExhaustedError } from '../../core/errors.js';
import {
  DEFAULT_PREFIX_FIELD,
  type Point2PointIpamOptions,
  addRoute,
  addUnique,
  addressOf,
  excludedRanges,
  hostString,
  parsePrefixes,
  removeEntry,
  removeRoute,
} from './ip-context.js';
import { IpPool, type Range, isExcluded } from './pool.js';

export const POINT2POINT_IPAM = 'point2point-ipam';

/** No free address pair is left in any pool of a family the IPAM serves. */
/** The pool has no free pair: RESOURCE_EXHAUSTED at the gRPC edge. */
export class IpamExhaustedError extends ResourceExhaustedError {
  override name = 'IpamExhaustedError';
}

interface Allocation {
  readonly pool: IpPool;
  readonly src: bigint;
  readonly dst: bigint;
}

/** Takes and frees address pairs in the pools: one pair per IP family the pools serve. */
class PairAllocator {
  readonly #pools: readonly IpPool[];
  readonly #families: readonly IpFamily[];

  constructor(pools: readonly IpPool[]) {
    this.#pools = pools;
    this.#families = [...new Set(pools.map((p) => p.family))];
  }

  /** One pair per family: recovered from the request when possible, else the lowest free; all or none. */
  allocate(ipc: IPContext, excluded: Map<IpFamily, Range[]>): Allocation[] {
    const out: Allocation[] = [];
    for (const family of this.#families) {
      const ex = excluded.get(family)!;
      const a = this.#recover(family, ipc, ex) ?? this.#lowestPair(family, ex);
      if (!a) {
        this.free(out);
        throw new IpamExhaustedError(
          `no free IPv${family} address pair in ${this.#of(family).join(', ')} (excluded: ${ipc.excludedPrefixes.join(', ') || 'none'})`,
        );
      }
      out.push(a);
    }
    return out;
  }

  free(allocs: readonly Allocation[]): void {
    for (const a of allocs) {
      a.pool.release(a.src);
      a.pool.release(a.dst);
    }
  }

  #of(family: IpFamily): IpPool[] {
    return this.#pools.filter((p) => p.family === family);
  }

  /** The request's own src/dst pair, when both lie in one pool, are free and not excluded. */
  #recover(family: IpFamily, ipc: IPContext, excluded: readonly Range[]): Allocation | undefined {
    const pick = (entries: readonly string[], pool: IpPool, not?: bigint): bigint | undefined => {
      for (const e of entries) {
        const a = addressOf(e);
        if (a && a.family === family && a.value !== not && pool.contains(a.value) && pool.isFree(a.value) && !isExcluded(a.value, excluded)) return a.value;
      }
      return undefined;
    };
    for (const pool of this.#of(family)) {
      const src = pick(ipc.srcIpAddrs, pool);
      if (src === undefined) continue;
      const dst = pick(ipc.dstIpAddrs, pool, src);
      if (dst === undefined) continue;
      pool.take(src);
      pool.take(dst);
      return { pool, src, dst };
    }
    return undefined;
  }

  #lowestPair(family: IpFamily, excluded: readonly Range[]): Allocation | undefined {
    for (const pool of this.#of(family)) {
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
  }
}

const isStale = (allocs: readonly Allocation[], excluded: Map<IpFamily, Range[]>): boolean =>
  allocs.some((a) => isExcluded(a.src, excluded.get(a.pool.family)!) || isExcluded(a.dst, excluded.get(a.pool.family)!));

/** Adds each pair's addresses and routes to the ip context (nothing it already holds twice). */
function publish(ipc: IPContext, allocs: readonly Allocation[]): void {
  for (const a of allocs) {
    const src = hostString(a.src, a.pool.family);
    const dst = hostString(a.dst, a.pool.family);
    addUnique(ipc.srcIpAddrs, src);
    addRoute(ipc, 'srcRoutes', dst);
    addUnique(ipc.dstIpAddrs, dst);
    addRoute(ipc, 'dstRoutes', src);
  }
}

/** Removes what `publish` added for these pairs. */
function withdraw(ipc: IPContext, allocs: readonly Allocation[]): void {
  for (const a of allocs) {
    const src = hostString(a.src, a.pool.family);
    const dst = hostString(a.dst, a.pool.family);
    removeEntry(ipc.srcIpAddrs, src);
    removeEntry(ipc.dstIpAddrs, dst);
    removeRoute(ipc, 'srcRoutes', dst);
    removeRoute(ipc, 'dstRoutes', src);
  }
}

export function point2pointIpamServer(prefixes: readonly string[], options: Point2PointIpamOptions = {}): NetworkServiceElement {
  const config = Object.freeze({ field: options.field ?? DEFAULT_PREFIX_FIELD });
  const pairs = new PairAllocator(parsePrefixes(prefixes, config.field).map((c) => new IpPool(c)));
  const allocations = new Map<string, Allocation[]>();

  const release = (id: string): void => {
    const allocs = allocations.get(id);
    if (!allocs) return;
    allocations.delete(id);
    pairs.free(allocs);
  };

  return {
    name: POINT2POINT_IPAM,
    provides: ['ipam'],
    async request(req, ctx, next) {
      const conn = req.connection as Connection;
      const ipc = ipContextOf(conn);
      const excluded = excludedRanges(ipc);
      let allocs = allocations.get(conn.id);
      if (allocs && isStale(allocs, excluded)) {
        withdraw(ipc, allocs);
        release(conn.id);
        allocs = undefined;
      }
      const loaded = allocs !== undefined;
      if (!allocs) {
        allocs = pairs.allocate(ipc, excluded);
        allocations.set(conn.id, allocs);
      }
      publish(ipc, allocs);
      ctx.log.debug({ src: ipc.srcIpAddrs, dst: ipc.dstIpAddrs, recovered: !loaded }, 'addresses assigned');
      try {
        return await next.request(req, ctx);
      } catch (err) {
        if (!loaded) release(conn.id);
        throw err;
      }
    },
    async close(conn, ctx, next) {
      release(conn.id);
      return next.close(conn, ctx);
    },
  };
}
