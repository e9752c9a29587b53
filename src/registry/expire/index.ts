/**
 * NSE registration expiry. On Register it sets `expiration_time` to now + the expire period (or the
 * earlier future time a caller such as nsmgr already set, unless that is only the echo of the time
 * this element handed out last time, so a refreshing re-Register always extends), and arms one timer per
 * NSE name. When the timer fires, the NSE is Unregistered through the rest of the chain, so the store
 * deletes it and Find watchers see `deleted: true`. Unregister and `stop()` cancel timers; nothing
 * runs after `stop()`. Timers come from the injected `Clock`. NSE registry chain, after `validate`,
 * before `store`. Mirrors upstream `sdk:pkg/registry/common/expire` (nse_server.go).
 */
import { ENDED } from '../../core/signals.js';
import { elementLog, type NseElement, type NseHandler } from '../../core/chain.js';
import type { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { realClock, type Clock, type TimerHandle } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { errorMessage } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/log.js';

export const DEFAULT_EXPIRE_PERIOD_MS = 60_000;

export interface ExpireNseServer extends NseElement {
  /** Cancels every timer; later Registers arm none. */
  stop(): void;
  /** Number of armed expiry timers. */
  readonly pending: number;
}

interface Entry {
  readonly timer: TimerHandle;
  /** The expiration this element handed out (epoch ms). */
  readonly at: number;
}

export function expireNseServer(
  deps: { clock?: Clock; log?: Logger } = {},
  options: { expirePeriod?: number } = {},
): ExpireNseServer {
  const clock = deps.clock ?? realClock;
  const log = elementLog(deps.log ?? silentLogger, 'expire');
  const config = Object.freeze({ expirePeriod: options.expirePeriod ?? DEFAULT_EXPIRE_PERIOD_MS });
  const entries = new Map<string, Entry>();
  const lifetime = new AbortController();

  const cancel = (name: string) => {
    entries.get(name)?.timer.cancel();
    entries.delete(name);
  };

  const arm = (nse: NetworkServiceEndpoint, at: number, next: NseHandler) => {
    cancel(nse.name);
    const timer = clock.setTimeout(() => {
      if (entries.get(nse.name)?.timer !== timer || lifetime.signal.aborted) return;
      entries.delete(nse.name);
      log.info({ nse: nse.name }, 'registration expired; unregistering');
      next.unregister(nse, newContext({ signal: lifetime.signal, log })).catch((err: unknown) => {
        log.warn({ nse: nse.name, err: errorMessage(err) }, 'unregister of expired NSE failed');
      });
    }, at - clock.now());
    entries.set(nse.name, { timer, at });
  };

  return {
    name: 'expire',
    provides: ['expire'],
    get pending() {
      return entries.size;
    },
    async register(nse, ctx, next) {
      const now = clock.now();
      let at = now + config.expirePeriod;
      const asked = nse.expirationTime?.getTime();
      const ours = entries.get(nse.name)?.at;
      if (asked !== undefined && asked !== ours && asked > now && asked < at) at = asked;
      const resp = await next.register({ ...nse, expirationTime: new Date(at) }, ctx);
      if (!lifetime.signal.aborted) arm(resp, at, next);
      ctx.log.debug({ nse: nse.name, expiresInMs: at - now }, 'registered');
      return resp;
    },
    find: (q, ctx, next) => next.find(q, ctx),
    async unregister(nse, ctx, next) {
      cancel(nse.name);
      return next.unregister(nse, ctx);
    },
    stop() {
      lifetime.abort(ENDED);
      for (const name of [...entries.keys()]) cancel(name);
    },
  };
}
