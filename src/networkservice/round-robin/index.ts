/**
 * `roundRobinServer(deps)` — forwarder server element right after `discover`. It picks an NSE from the
 * `CANDIDATES` that discover stored: a per-network-service counter chooses `candidates[counter % n]`
 * (counter++ on every pick); on an error from downstream the next pick is tried, up to n attempts. The
 * chosen NSE's name goes into `network_service_endpoint_name` and its `url` into the state key `connect`
 * reads (`CLIENT_URL`). A request that already names its NSE (refresh) uses that one without touching
 * the counter. Close points `connect` at the NSE discover resolved (if any) and always calls next.
 * Mirrors `sdk/pkg/networkservice/common/roundrobin`. No background work.
 */
import type { Connection } from '../../api/gen/connection.js';
import type { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { cloneRequest } from '../../api/helpers.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { NotFoundError, UnavailableError, errorMessage } from '../../core/errors.js';
import { CLIENT_URL, CLIENT_URL_CAPABILITY } from '../client-url/index.js';
import { CANDIDATES, CANDIDATES_CAPABILITY } from '../discover/index.js';

export const ROUND_ROBIN = 'round-robin';

export function roundRobinServer(): NetworkServiceElement {
  const counters = new Map<string, number>();
  const pick = (service: string, n: number): number => {
    const c = counters.get(service) ?? 0;
    counters.set(service, c + 1);
    return c % n;
  };

  return {
    name: ROUND_ROBIN,
    requires: [CANDIDATES_CAPABILITY],
    provides: [CLIENT_URL_CAPABILITY],
    async request(req, ctx, next) {
      const conn = req.connection!;
      const candidates = ctx.state.get(CANDIDATES) ?? [];
      if (candidates.length === 0) throw new NotFoundError(`no network service endpoint candidates for "${conn.networkService}"`);
      const named = conn.networkServiceEndpointName ? candidates.find((c) => c.name === conn.networkServiceEndpointName) : undefined;
      const attempts = named ? 1 : candidates.length;
      const failures: string[] = [];
      let lastErr: unknown;
      for (let i = 0; i < attempts; i++) {
        // Picked lazily: the counter moves once per attempt, as upstream.
        const nse: NetworkServiceEndpoint = named ?? candidates[pick(conn.networkService, candidates.length)];
        const attempt = cloneRequest(req);
        attempt.connection!.networkServiceEndpointName = nse.name;
        ctx.state.set(CLIENT_URL, nse.url);
        try {
          const out: Connection = await next.request(attempt, ctx);
          return out;
        } catch (err) {
          if (ctx.signal.aborted) throw err;
          lastErr = err;
          failures.push(`${nse.name}: ${errorMessage(err)}`);
          ctx.log.warn({ nse: nse.name, url: nse.url, err: errorMessage(err) }, 'endpoint failed, trying the next candidate');
        }
      }
      if (attempts === 1) throw lastErr;
      throw new UnavailableError(`all ${attempts} endpoints failed: ${failures.join('; ')}`, { cause: lastErr });
    },
    async close(conn, ctx, next) {
      const nse = ctx.state.get(CANDIDATES)?.find((c) => c.name === conn.networkServiceEndpointName);
      if (nse) ctx.state.set(CLIENT_URL, nse.url);
      ctx.state.delete(CANDIDATES);
      return next.close(conn, ctx);
    },
  };
}
