/**
 * `refresh` — NSE registry client element that keeps a registration alive.
 *
 * After each successful Register whose answer carries an `expirationTime`, it re-Registers the same
 * endpoint through the rest of the chain at 2/3 of the time left until that expiration. A failed refresh
 * is retried with bounded backoff (200 ms doubling to 5 s) until one succeeds; the next refresh is then
 * scheduled from the new answer. Each attempt is bounded by a quarter of the time left before expiry (at
 * most 15 s, at least 1 s; 15 s once expired), so a peer that hangs under load costs one short attempt, not the whole margin.
 * The registry services are not behind nsmgr's Request admission, so a refresh never waits for Requests. An endpoint registered with an explicit `expirationTime` keeps asking
 * for the same lifetime on every refresh. A new Register for the same name (e.g. from `heal`) replaces
 * the pending refresh; Unregister, or the `signal` in deps (the client's lifetime), stops it.
 *
 * Sits before `connect` in a registry client chain (`heal` → `refresh` → `connect`). Background work: one
 * timer (or retry loop) per registered name. Mirrors upstream `sdk/pkg/registry/common/refresh`.
 */
import type { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { NetworkServiceEndpoint as NseFns } from '../../api/gen/registry.js';
import { elementLog, type NseElement, type NseHandler } from '../../core/chain.js';
import { realClock, type Clock, type TimerHandle } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { CancelledError, errorMessage } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/log.js';
import { linkSignals, ENDED } from '../../core/signals.js';
import { Backoff, DEFAULT_RETRY_MAX_MS, DEFAULT_RETRY_MIN_MS, clockDelay } from './backoff.js';

export { Backoff, clockDelay, DEFAULT_RETRY_MAX_MS, DEFAULT_RETRY_MIN_MS } from './backoff.js';

/** Fraction of the remaining lifetime after which the registration is renewed (upstream: 2/3). */
export const DEFAULT_REFRESH_FRACTION = 2 / 3;
/** Bound of one refresh attempt (further bounded to a quarter of the time left before expiry). */
export const DEFAULT_REFRESH_CALL_TIMEOUT_MS = 15_000;
/** Shortest bound of one refresh attempt, however close the expiry. */
export const MIN_REFRESH_CALL_TIMEOUT_MS = 1_000;

export interface RefreshDeps {
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Lifetime of the client: all refreshes stop when it aborts. */
  readonly signal?: AbortSignal;
}

export interface RefreshOptions {
  readonly fraction?: number;
  readonly retryMin?: number;
  readonly retryMax?: number;
  readonly callTimeout?: number;
}

interface Entry {
  readonly controller: AbortController;
  readonly item: NetworkServiceEndpoint;
  /** Lifetime (ms) the caller asked for with an explicit expirationTime, if any. */
  readonly lifetime?: number;
  readonly next: NseHandler;
  timer?: TimerHandle;
  /** When the registration last answered expires (epoch ms on the clock), if it does. */
  expiresAt?: number;
}

export function nseRefreshClient(deps: RefreshDeps = {}, options: RefreshOptions = {}): NseElement {
  const clock = deps.clock ?? realClock;
  const log = elementLog(deps.log ?? silentLogger, 'refresh');
  const config = Object.freeze({
    fraction: options.fraction ?? DEFAULT_REFRESH_FRACTION,
    retryMin: options.retryMin ?? DEFAULT_RETRY_MIN_MS,
    retryMax: options.retryMax ?? DEFAULT_RETRY_MAX_MS,
    callTimeout: options.callTimeout ?? DEFAULT_REFRESH_CALL_TIMEOUT_MS,
  });
  const entries = new Map<string, Entry>();

  const cancel = (name: string) => {
    const e = entries.get(name);
    if (!e) return;
    entries.delete(name);
    e.timer?.cancel();
    e.controller.abort(ENDED);
  };
  deps.signal?.addEventListener('abort', () => {
    for (const name of [...entries.keys()]) cancel(name);
  }, { once: true });

  const delayFor = (resp: NetworkServiceEndpoint): number | undefined => {
    const exp = resp.expirationTime?.getTime();
    if (exp === undefined) return undefined;
    return Math.max(0, (exp - clock.now()) * config.fraction);
  };

  const schedule = (entry: Entry, resp: NetworkServiceEndpoint) => {
    const delay = delayFor(resp);
    if (delay === undefined) {
      log.debug({ nse: entry.item.name }, 'registration does not expire; no refresh');
      if (entries.get(entry.item.name) === entry) entries.delete(entry.item.name);
      return;
    }
    entry.expiresAt = resp.expirationTime?.getTime();
    log.debug({ nse: entry.item.name, inMs: Math.round(delay) }, 'refresh scheduled');
    entry.timer = clock.setTimeout(() => void refresh(entry), delay);
  };

  // an attempt that hangs must leave time for the next ones before the registration expires
  const attemptTimeout = (entry: Entry): number => {
    const left = entry.expiresAt === undefined ? 0 : entry.expiresAt - clock.now();
    // expired already (or never expiring): nothing left to protect, the attempt gets its full bound
    if (left <= 0) return config.callTimeout;
    return Math.min(config.callTimeout, Math.max(MIN_REFRESH_CALL_TIMEOUT_MS, left / 4));
  };

  /** One Register of `entry`, bounded by `attemptTimeout` on the injected clock. */
  const attemptOnce = async (entry: Entry, signal: AbortSignal): Promise<NetworkServiceEndpoint> => {
    const item = NseFns.fromPartial(entry.item);
    if (entry.lifetime !== undefined) item.expirationTime = new Date(clock.now() + entry.lifetime);
    const bound = attemptTimeout(entry);
    const attempt = new AbortController();
    const timer = clock.setTimeout(() => attempt.abort(new CancelledError(`refresh attempt timed out after ${Math.round(bound)} ms`)), bound);
    const linked = linkSignals([signal, attempt.signal]);
    try {
      return await entry.next.register(item, newContext({ signal: linked.signal, log }));
    } finally {
      timer.cancel();
      linked.dispose();
    }
  };

  const refresh = async (entry: Entry) => {
    const backoff = new Backoff(config.retryMin, config.retryMax);
    const signal = entry.controller.signal;
    while (!signal.aborted) {
      try {
        const resp = await attemptOnce(entry, signal);
        if (signal.aborted) return;
        log.debug({ nse: entry.item.name, expires: resp.expirationTime }, 'registration refreshed');
        schedule(entry, resp);
        return;
      } catch (err) {
        if (signal.aborted) return;
        const wait = backoff.next();
        log.warn({ nse: entry.item.name, err: errorMessage(err), retryInMs: wait }, 'refresh failed; retrying');
        try {
          await clockDelay(clock, wait, signal);
        } catch {
          return;
        }
      }
    }
  };

  return {
    name: 'refresh',
    async register(item, ctx, next) {
      const requested = item.expirationTime?.getTime();
      const lifetime = requested === undefined ? undefined : Math.max(0, requested - clock.now());
      const resp = await next.register(item, ctx);
      if (deps.signal?.aborted) return resp;
      cancel(item.name);
      const entry: Entry = {
        controller: new AbortController(),
        item: NseFns.fromPartial(item),
        lifetime,
        next,
      };
      entries.set(item.name, entry);
      schedule(entry, resp);
      return resp;
    },
    find: (query, ctx, next) => next.find(query, ctx),
    async unregister(item, ctx, next) {
      cancel(item.name);
      await next.unregister(item, ctx);
    },
  };
}
