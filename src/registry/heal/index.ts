/**
 * `heal` — registry client element that re-registers as soon as the registry is reachable again after it
 * was gone (restarted, or a memory registry that lost its state).
 *
 * After a successful Register it watches `Find({name}, watch: true)` for its own name through the rest of
 * the chain. When that stream breaks (error or end) while the registration is active, it retries
 * Register through the rest of the chain with bounded backoff (200 ms doubling to 5 s) until one
 * succeeds, then watches again. The backoff restarts only once a new watch delivered an answer, so a
 * registry that ends watches at once cannot cause a tight loop. Unregister, or the `signal` in deps (the
 * client's lifetime), stops the watch and any retry.
 *
 * Sits first in a registry client chain (`heal` → `refresh` → `connect`), so its re-Register also re-arms
 * `refresh`. Background work: one watch (or retry loop) per registered name. Mirrors upstream
 * `sdk/pkg/registry/common/heal`.
 */
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceEndpointResponse,
  NetworkServiceQuery,
  NetworkServiceResponse,
} from '../../api/gen/registry.js';
import { NetworkService as NsFns, NetworkServiceEndpoint as NseFns } from '../../api/gen/registry.js';
import { elementLog, type NsElement, type NseElement, type RegistryElement, type RegistryHandler } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { errorMessage } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/log.js';
import { linkSignals, ENDED } from '../../core/signals.js';
import { Backoff, DEFAULT_RETRY_MAX_MS, DEFAULT_RETRY_MIN_MS, clockDelay } from '../refresh/backoff.js';

/** Bound of one re-Register attempt. */
export const DEFAULT_HEAL_CALL_TIMEOUT_MS = 15_000;

export interface HealDeps {
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Lifetime of the client: all watches and retries stop when it aborts. */
  readonly signal?: AbortSignal;
}

export interface HealOptions {
  readonly retryMin?: number;
  readonly retryMax?: number;
  readonly callTimeout?: number;
}

interface Entry<T, Q, R> {
  readonly controller: AbortController;
  item: T;
  next: RegistryHandler<T, Q, R>;
}

function healElement<T extends { name: string }, Q, R>(
  kind: string,
  query: (name: string) => Q,
  clone: (item: T) => T,
  deps: HealDeps,
  options: HealOptions,
): RegistryElement<T, Q, R> {
  const clock = deps.clock ?? realClock;
  const log = elementLog(deps.log ?? silentLogger, 'heal');
  const config = Object.freeze({
    retryMin: options.retryMin ?? DEFAULT_RETRY_MIN_MS,
    retryMax: options.retryMax ?? DEFAULT_RETRY_MAX_MS,
    callTimeout: options.callTimeout ?? DEFAULT_HEAL_CALL_TIMEOUT_MS,
  });
  const entries = new Map<string, Entry<T, Q, R>>();

  const cancel = (name: string) => {
    const e = entries.get(name);
    if (!e) return;
    entries.delete(name);
    e.controller.abort(ENDED);
  };
  deps.signal?.addEventListener('abort', () => {
    for (const name of [...entries.keys()]) cancel(name);
  }, { once: true });

  /** Watches until the stream breaks; true when it delivered at least one answer. */
  const watchOnce = async (entry: Entry<T, Q, R>): Promise<boolean> => {
    const signal = entry.controller.signal;
    const next = entry.next;
    let answered = false;
    try {
      for await (const _ of next.find(query(entry.item.name), newContext({ signal, log }))) {
        void _;
        answered = true;
      }
      if (!signal.aborted) log.warn({ [kind]: entry.item.name }, 'registry watch ended');
    } catch (err) {
      if (!signal.aborted) log.warn({ [kind]: entry.item.name, err: errorMessage(err) }, 'registry watch broke');
    }
    return answered;
  };

  const reRegister = async (entry: Entry<T, Q, R>, backoff: Backoff): Promise<boolean> => {
    const signal = entry.controller.signal;
    const next = entry.next;
    for (;;) {
      try {
        await clockDelay(clock, backoff.next(), signal);
      } catch {
        return false;
      }
      const linked = linkSignals([signal], config.callTimeout);
      try {
        await next.register(clone(entry.item), newContext({ signal: linked.signal, log }));
        if (signal.aborted) return false;
        log.info({ [kind]: entry.item.name }, 're-registered after the registry came back');
        return true;
      } catch (err) {
        if (signal.aborted) return false;
        log.warn({ [kind]: entry.item.name, err: errorMessage(err) }, 're-register failed; retrying');
      } finally {
        linked.dispose();
      }
    }
  };

  const run = async (entry: Entry<T, Q, R>) => {
    const backoff = new Backoff(config.retryMin, config.retryMax);
    while (!entry.controller.signal.aborted) {
      if (await watchOnce(entry)) backoff.reset();
      if (entry.controller.signal.aborted) return;
      if (!(await reRegister(entry, backoff))) return;
    }
  };

  return {
    name: 'heal',
    async register(item, ctx, next) {
      const resp = await next.register(item, ctx);
      if (deps.signal?.aborted) return resp;
      const existing = entries.get(item.name);
      if (existing && !existing.controller.signal.aborted) {
        existing.item = clone(item);
        existing.next = next;
        return resp;
      }
      const entry: Entry<T, Q, R> = {
        controller: new AbortController(),
        item: clone(item),
        next: next,
      };
      entries.set(item.name, entry);
      void run(entry);
      return resp;
    },
    find: (q, ctx, next) => next.find(q, ctx),
    async unregister(item, ctx, next) {
      cancel(item.name);
      await next.unregister(item, ctx);
    },
  };
}

export function nseHealClient(deps: HealDeps = {}, options: HealOptions = {}): NseElement {
  return healElement<NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceEndpointResponse>(
    'nse',
    (name) => ({ networkServiceEndpoint: NseFns.fromPartial({ name }), watch: true }),
    (item) => NseFns.fromPartial(item),
    deps,
    options,
  );
}

export function nsHealClient(deps: HealDeps = {}, options: HealOptions = {}): NsElement {
  return healElement<NetworkService, NetworkServiceQuery, NetworkServiceResponse>(
    'ns',
    (name) => ({ networkService: NsFns.fromPartial({ name }), watch: true }),
    (item) => NsFns.fromPartial(item),
    deps,
    options,
  );
}
