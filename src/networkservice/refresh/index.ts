/**
 * refresh (client) — re-Requests a connection before the tokens on its path expire. After every
 * successful Request it schedules one re-Request through `begin`'s event factory at
 * `min(segment.expires − now) × scale` (scale 0.2 + 0.2·index/len, 1/3 for a one-segment path, as
 * upstream); a failed refresh is retried every `retryInterval` until it succeeds. A new Request
 * reschedules; Close cancels, and no refresh starts after it. Background work: one timer per connection
 * (injected Clock), kept in the connection's state.
 *
 * Placement: client chain, after `begin`. Mirrors upstream sdk `pkg/networkservice/common/refresh`.
 */
import type { Connection } from '../../api/gen/connection.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { realClock, type Clock, type TimerHandle } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { StateKey } from '../../core/state.js';

export const DEFAULT_REFRESH_RETRY_INTERVAL = 200;

const TIMER = new StateKey<TimerHandle>('refresh/timer');

/** Milliseconds after which a connection should be refreshed. */
export function refreshAfter(conn: Connection, now: number): number {
  const segs = conn.path?.pathSegments ?? [];
  let min = Infinity;
  for (const s of segs) if (s.expires) min = Math.min(min, s.expires.getTime() - now);
  if (!Number.isFinite(min) || min <= 0) return 0;
  const scale = segs.length <= 1 ? 1 / 3 : 0.2 + (0.2 * (conn.path?.index ?? 0)) / segs.length;
  return Math.floor(min * scale);
}

export function refreshClient(deps: { log: Logger; clock?: Clock }, options: { retryInterval?: number } = {}): NetworkServiceElement {
  const clock = deps.clock ?? realClock;
  const retryInterval = options.retryInterval ?? DEFAULT_REFRESH_RETRY_INTERVAL;
  const log = deps.log.child({ element: 'refresh' });
  return {
    name: 'refresh',
    requires: ['begin'],
    async request(req, ctx, next) {
      const conn = await next.request(req, ctx);
      const events = ctx.events;
      if (!events) return conn;
      ctx.state.get(TIMER)?.cancel();
      const schedule = (ms: number) => {
        if (events.lifetime.aborted) return;
        const t = clock.setTimeout(() => {
          if (events.lifetime.aborted) return;
          events.request({ signal: events.lifetime }).catch((err: unknown) => {
            if (events.lifetime.aborted) return;
            log.warn({ connId: conn.id, err: errorMessage(err), retryInMs: retryInterval }, 'refresh failed; retrying');
            schedule(retryInterval);
          });
        }, ms);
        ctx.state.set(TIMER, t);
      };
      schedule(refreshAfter(conn, clock.now()));
      return conn;
    },
    async close(conn, ctx, next) {
      ctx.state.get(TIMER)?.cancel();
      ctx.state.delete(TIMER);
      return next.close(conn, ctx);
    },
  };
}
