/**
 * `discoverServer(deps)` — forwarder server element, before `round-robin`. Request: with
 * `network_service_endpoint_name` set (refresh, non-reselect heal) it finds that NSE by name
 * (`NotFoundError` if it is gone); otherwise it finds the NetworkService (`NotFoundError` naming it if
 * absent), the NSEs offering it, drops expired ones, applies the service's `matches` (see `match.ts`) and
 * sets `connection.payload` from the service. The candidates go to the per-connection state
 * (`CANDIDATES`) for `round-robin`; none → `NotFoundError`. Close: resolves the NSE by name when it can (so
 * round-robin can point `connect` at it) but always calls next, even when the registry fails.
 * Mirrors `sdk/pkg/networkservice/common/discover`. No background work (upstream waits on a registry watch
 * for late NSEs; here the caller's retry does that).
 */
import type { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import type { NetworkServiceElement, NseHandler, NsHandler } from '../../core/chain.js';
import { NotFoundError, errorMessage } from '../../core/errors.js';
import { realClock, type Clock } from '../../core/clock.js';
import { StateKey } from '../../core/state.js';
import { findEndpoints, findNetworkServices, isExpired, matchEndpoints } from './match.js';

export { isSubset, matchEndpoints, processLabelTemplate } from './match.js';

export const DISCOVER = 'discover';

/** NSE candidates of this request, in selection order (read by `round-robin`). */
export const CANDIDATES = new StateKey<NetworkServiceEndpoint[]>('discover.candidates');
/** What an element that sets CANDIDATES provides; readers require it. */
export const CANDIDATES_CAPABILITY = 'candidates';

export interface DiscoverDeps {
  readonly nsRegistry: NsHandler;
  readonly nseRegistry: NseHandler;
  /** Wall clock for expiry checks. */
  readonly clock?: Clock;
}

export function discoverServer(deps: DiscoverDeps): NetworkServiceElement {
  const clock = deps.clock ?? realClock;

  const byName = async (name: string, ctx: Parameters<NetworkServiceElement['close']>[1]): Promise<NetworkServiceEndpoint | undefined> =>
    (await findEndpoints(deps.nseRegistry, { name }, ctx)).find((n) => n.name === name && !isExpired(n, clock.now()));

  return {
    name: DISCOVER,
    provides: [CANDIDATES_CAPABILITY],
    async request(req, ctx, next) {
      const conn = req.connection!;
      if (conn.networkServiceEndpointName) {
        const nse = await byName(conn.networkServiceEndpointName, ctx);
        if (!nse) throw new NotFoundError(`network service endpoint "${conn.networkServiceEndpointName}" not found`);
        ctx.state.set(CANDIDATES, [nse]);
        return next.request(req, ctx);
      }
      const service = conn.networkService;
      // the two lookups are independent: one round trip instead of two
      const [services, endpoints] = await Promise.all([
        findNetworkServices(deps.nsRegistry, { name: service }, ctx),
        findEndpoints(deps.nseRegistry, { networkServiceNames: [service] }, ctx),
      ]);
      const ns = services.find((s) => s.name === service);
      if (!ns) throw new NotFoundError(`network service "${service}" not found`);
      const all = endpoints.filter((n) => n.networkServiceNames.includes(service) && !isExpired(n, clock.now()));
      const candidates = matchEndpoints(conn.labels ?? {}, ns, all);
      ctx.log.debug({ service, found: all.map((n) => n.name), candidates: candidates.map((n) => n.name) }, 'endpoints discovered');
      if (candidates.length === 0) {
        throw new NotFoundError(`no network service endpoint for "${service}" matches labels ${JSON.stringify(conn.labels ?? {})} (registered: ${all.length})`);
      }
      conn.payload = ns.payload;
      ctx.state.set(CANDIDATES, candidates);
      return next.request(req, ctx);
    },
    async close(conn, ctx, next) {
      ctx.state.delete(CANDIDATES);
      if (conn.networkServiceEndpointName) {
        try {
          const nse = await byName(conn.networkServiceEndpointName, ctx);
          if (nse) ctx.state.set(CANDIDATES, [nse]);
          else ctx.log.debug({ nse: conn.networkServiceEndpointName }, 'endpoint not found on close');
        } catch (err) {
          ctx.log.debug({ err: errorMessage(err) }, 'registry lookup failed on close');
        }
      }
      return next.close(conn, ctx);
    },
  };
}
