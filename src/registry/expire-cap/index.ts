/**
 * `expire-cap` — nsmgr registry server element: caps an NSE registration's `expiration_time` at
 * `now + maxExpiration` (default 1 min; a later or missing expiration is replaced, an earlier one is
 * kept), so an NSE behind this nsmgr must keep refreshing. Find and Unregister pass through. This is the
 * nsmgr use of upstream `sdk/pkg/registry/common/expire` (`nsmgr/server.go`: `defaultExpiration:
 * time.Minute`); the registry's own expiry element lives in `src/registry/expire`.
 */
import { NetworkServiceEndpoint as NseFns } from '../../api/gen/registry.js';
import type { NseElement } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import { InvalidArgumentError } from '../../core/errors.js';

export const DEFAULT_MAX_EXPIRATION_MS = 60_000;

export interface ExpireCapDeps {
  readonly clock?: Clock;
}

export interface ExpireCapOptions {
  readonly maxExpiration?: number;
}

export function expireCapServer(deps: ExpireCapDeps = {}, options: ExpireCapOptions = {}): NseElement {
  const clock = deps.clock ?? realClock;
  const maxExpiration = options.maxExpiration ?? DEFAULT_MAX_EXPIRATION_MS;
  if (!(maxExpiration > 0)) throw new InvalidArgumentError('maxExpiration', maxExpiration, 'must be a positive number of ms');
  return {
    name: 'expire-cap',
    register(nse, ctx, next) {
      const cap = clock.now() + maxExpiration;
      const given = nse.expirationTime?.getTime();
      const out = NseFns.fromPartial(nse);
      out.expirationTime = new Date(given !== undefined && !Number.isNaN(given) && given < cap ? given : cap);
      return next.register(out, ctx);
    },
    find: (q, ctx, next) => next.find(q, ctx),
    unregister: (nse, ctx, next) => next.unregister(nse, ctx),
  };
}
