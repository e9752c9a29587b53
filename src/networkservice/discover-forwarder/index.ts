/**
 * `discoverForwarderServer(deps, options)` — NSMgr server element that chooses the forwarder (before
 * `connect`). Request: finds the NetworkService (`NotFoundError` if absent) and the forwarders (NSEs of
 * service `forwarderServiceName`, queried with this NSMgr's URL so the registry returns the ones registered
 * here), keeps those whose forwarder labels ⊇ the first applicable `match.metadata.labels` (default
 * `{p2p: "true"}`; no matches → all). Order of tries:
 *  - the forwarder stored for this connection (`FORWARDER_NAME`), and only it (sticky, as upstream: a
 *    failure surfaces to the client, whose heal then reselects);
 *  - else, on the first request, the forwarder named in `path_segments[index+1]` first (heal after an
 *    NSMgr restart keeps the data path), then the rest in registry order until one succeeds.
 * `state = RESELECT_REQUESTED` forgets the stored forwarder and ignores the path hint. The chosen
 * forwarder's URL goes to `CLIENT_URL` for `connect`, its name to `FORWARDER_NAME`.
 * Close: forwarder = stored name, else the next path segment's name; looks it up to point `connect` at it;
 * always calls next, whatever the registry says.
 * Mirrors `sdk/pkg/networkservice/common/discoverforwarder`. No background work.
 */
import { State } from '../../api/gen/connection.js';
import { CLIENT_URL, CLIENT_URL_CAPABILITY } from '../client-url/index.js';
import { DEFAULT_FORWARDER_LABELS, FORWARDER_SERVICE } from '../../api/constants.js';
import type { NetworkService, NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { cloneRequest, nextSegment } from '../../api/helpers.js';
import type { NetworkServiceElement, NseHandler, NsHandler } from '../../core/chain.js';
import { NotFoundError, UnavailableError, errorMessage } from '../../core/errors.js';
import { realClock, type Clock } from '../../core/clock.js';
import { StateKey } from '../../core/state.js';
import { findEndpoints, findNetworkServices, isExpired, isSubset } from '../discover/match.js';

export const DISCOVER_FORWARDER = 'discover-forwarder';
export const DEFAULT_FORWARDER_SERVICE_NAME = FORWARDER_SERVICE;
export const DEFAULT_NSMGR_URL = '';

/** Name of the forwarder this connection goes through. */
export const FORWARDER_NAME = new StateKey<string>('discoverForwarder.name');

export interface DiscoverForwarderDeps {
  readonly nsRegistry: NsHandler;
  readonly nseRegistry: NseHandler;
  /** Wall clock for expiry checks. */
  readonly clock?: Clock;
}

export interface DiscoverForwarderOptions {
  readonly forwarderServiceName?: string;
  /** This NSMgr's URL, sent in the NSE query so the registry returns forwarders registered here. */
  readonly nsmgrUrl?: string;
}

/** Forwarders selected by the service's matches (`matchutils`-style, labels under the forwarder service). */
export function matchForwarders(
  labels: Readonly<Record<string, string>>,
  ns: NetworkService,
  forwarders: readonly NetworkServiceEndpoint[],
  forwarderServiceName: string = DEFAULT_FORWARDER_SERVICE_NAME,
): NetworkServiceEndpoint[] {
  if (ns.matches.length === 0) return [...forwarders];
  let result: NetworkServiceEndpoint[] = [];
  for (const match of ns.matches) {
    if (!isSubset(labels, match.sourceSelector, labels)) continue;
    const want = match.metadata?.labels && Object.keys(match.metadata.labels).length > 0 ? match.metadata.labels : DEFAULT_FORWARDER_LABELS;
    result = forwarders.filter((f) => {
      const have = f.networkServiceLabels[forwarderServiceName]?.labels;
      return have !== undefined && isSubset(have, want, labels);
    });
    if (match.fallthrough && result.length === 0) continue;
    break;
  }
  return result;
}

export function discoverForwarderServer(deps: DiscoverForwarderDeps, options: DiscoverForwarderOptions = {}): NetworkServiceElement {
  const config = Object.freeze({
    forwarderServiceName: options.forwarderServiceName ?? DEFAULT_FORWARDER_SERVICE_NAME,
    nsmgrUrl: options.nsmgrUrl ?? DEFAULT_NSMGR_URL,
  });
  const clock = deps.clock ?? realClock;

  return {
    name: DISCOVER_FORWARDER,
    requires: ['state'],
    provides: ['forwarder', CLIENT_URL_CAPABILITY],
    async request(req, ctx, next) {
      const conn = req.connection!;
      const reselect = conn.state === State.RESELECT_REQUESTED;
      if (reselect) ctx.state.delete(FORWARDER_NAME);
      const stored = ctx.state.get(FORWARDER_NAME);

      const service = conn.networkService;
      // the two lookups are independent: one round trip instead of two
      const [services, forwarders] = await Promise.all([
        findNetworkServices(deps.nsRegistry, { name: service }, ctx),
        findEndpoints(deps.nseRegistry, { networkServiceNames: [config.forwarderServiceName], name: stored ?? '', url: config.nsmgrUrl }, ctx),
      ]);
      const ns = services.find((s) => s.name === service);
      if (!ns) throw new NotFoundError(`network service "${service}" not found`);

      const found = forwarders.filter(
        (f) => f.networkServiceNames.includes(config.forwarderServiceName) && (stored === undefined || f.name === stored) && !isExpired(f, clock.now()),
      );
      const candidates = matchForwarders(conn.labels ?? {}, ns, found, config.forwarderServiceName);
      if (candidates.length === 0) {
        throw new NotFoundError(stored !== undefined ? `forwarder "${stored}" is not available` : `no forwarder found for "${service}" (registered: ${found.length})`);
      }

      if (stored === undefined && !reselect) {
        const hint = nextSegment(conn)?.name;
        const i = hint ? candidates.findIndex((c) => c.name === hint) : -1;
        if (i > 0) candidates.unshift(...candidates.splice(i, 1));
      }

      const failures: string[] = [];
      let lastErr: unknown;
      for (const fwd of candidates) {
        if (!fwd.url) {
          failures.push(`${fwd.name}: no url`);
          continue;
        }
        ctx.state.set(CLIENT_URL, fwd.url);
        try {
          const out = await next.request(cloneRequest(req), ctx);
          ctx.state.set(FORWARDER_NAME, fwd.name);
          ctx.log.debug({ forwarder: fwd.name, url: fwd.url }, 'forwarder selected');
          return out;
        } catch (err) {
          if (ctx.signal.aborted) throw err;
          lastErr = err;
          failures.push(`${fwd.name}: ${errorMessage(err)}`);
          ctx.log.warn({ forwarder: fwd.name, url: fwd.url, err: errorMessage(err) }, 'forwarder failed');
        }
      }
      if (candidates.length === 1 && lastErr !== undefined) throw lastErr;
      throw new UnavailableError(`all forwarders failed: ${failures.join('; ')}`, { cause: lastErr });
    },
    async close(conn, ctx, next) {
      const name = ctx.state.get(FORWARDER_NAME) ?? nextSegment(conn)?.name;
      if (!name) {
        ctx.log.debug('connection has no forwarder');
      } else {
        try {
          const fwd = (await findEndpoints(deps.nseRegistry, { name, url: config.nsmgrUrl }, ctx)).find((f) => f.name === name);
          if (fwd?.url) ctx.state.set(CLIENT_URL, fwd.url);
          else ctx.log.debug({ forwarder: name }, 'forwarder not found on close');
        } catch (err) {
          ctx.log.debug({ forwarder: name, err: errorMessage(err) }, 'registry lookup failed on close');
        }
      }
      try {
        return await next.close(conn, ctx);
      } finally {
        ctx.state.delete(FORWARDER_NAME);
      }
    },
  };
}
