/**
 * `timeout` server (upstream `sdk:pkg/networkservice/common/timeout`): closes a connection whose
 * previous hop stopped refreshing it. After every successful Request it (re-)arms a timer at
 * `prevSegment.expires − margin`, the margin being the time left on the request (`requestTimeout` when
 * the call has no deadline) but at most half the time left on the token; when it fires it Closes the
 * connection through the event factory (`ctx.events.close()`), so the Close runs down this hop's chain
 * like a Close from the client.
 * A failed re-Request keeps the armed timer; Close (or the end of the connection lifetime) cancels it.
 * Connections without a previous segment or without `expires` get no timer.
 * Placement: server chain after `begin` and `update-token` (which fills the previous segment's expiry).
 * Background work: one timer per connection (deps.clock), gone with the connection.
 */
import { prevSegment } from '../../api/helpers.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import type { Clock, TimerHandle } from '../../core/clock.js';
import { timeLeft } from '../../core/context.js';
import { errorMessage, InvalidArgumentError } from '../../core/errors.js';
import { StateKey } from '../../core/state.js';

/** Upstream: the time left on the request context (cmd-nsc request timeout 15 s). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;

export interface TimeoutDeps {
  readonly clock: Clock;
}

export interface TimeoutOptions {
  /** Margin (ms) before the previous segment's expiry at which the connection is closed. */
  readonly requestTimeout?: number;
}

interface TimerState {
  timer?: TimerHandle;
  readonly lifetime?: AbortSignal;
  readonly onEnd: () => void;
}

const TIMER = new StateKey<TimerState>('timeout.timer');

export function timeoutServer(deps: TimeoutDeps, options: TimeoutOptions = {}): NetworkServiceElement {
  const config = Object.freeze({ requestTimeout: options.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT_MS });
  if (!Number.isFinite(config.requestTimeout) || config.requestTimeout < 0) {
    throw new InvalidArgumentError('timeout requestTimeout', config.requestTimeout, 'must be a non-negative number of milliseconds');
  }
  const release = (st: TimerState | undefined) => {
    if (!st) return;
    st.timer?.cancel();
    st.timer = undefined;
    st.lifetime?.removeEventListener('abort', st.onEnd);
  };
  return {
    name: 'timeout-server',
    requires: ['state', 'events'],
    async request(req, ctx, next) {
      const conn = await next.request(req, ctx);
      const expires = prevSegment(conn)?.expires;
      const events = ctx.events;
      const st = ctx.state.ensure(TIMER, () => {
        const s: TimerState = { lifetime: events?.lifetime, onEnd: () => release(s) };
        s.lifetime?.addEventListener('abort', s.onEnd, { once: true });
        return s;
      });
      st.timer?.cancel();
      st.timer = undefined;
      if (expires && events && !events.lifetime.aborted) {
        // Upstream's margin is the time left on the incoming request; never more than half the remaining
        // token lifetime, or tokens shorter than the margin would close every connection at once.
        const remaining = expires.getTime() - deps.clock.now();
        const delay = remaining - Math.min(timeLeft(ctx, config.requestTimeout, deps.clock.now()), remaining / 2);
        const log = ctx.log;
        st.timer = deps.clock.setTimeout(() => {
          st.timer = undefined;
          log.info({ expires: expires.toISOString() }, 'previous hop stopped refreshing: closing the connection');
          events.close().catch((err) => log.error({ err: errorMessage(err) }, 'timeout Close failed'));
        }, delay);
      }
      return conn;
    },
    async close(conn, ctx, next) {
      release(ctx.state.delete(TIMER));
      return next.close(conn, ctx);
    },
  };
}
