/**
 * Registry client side: the client chains NSEs and forwarders register through, and a tiny
 * `startRegistration` helper that owns one registration's lifetime.
 *
 * - `nseRegistryClient` = [`heal`, `refresh`, `authorize`, `connect`]: keeps an NSE registered (re-Register at 2/3 of
 *   its expiry, and as soon as the registry is back after its watch broke). `nsRegistryClient` =
 *   [`heal`, `authorize`, `connect`] (NetworkServices do not expire). Background work stops when `deps.signal` aborts.
 *   Mirrors upstream `sdk/pkg/registry/chains/client` (`NewNetworkServiceEndpointRegistryClient`,
 *   `NewNetworkServiceRegistryClient`).
 * - `startRegistration` registers once (retrying with bounded backoff until it succeeds or is stopped),
 *   after which the chain's `refresh`/`heal` keep it alive; `stop()` ends all of it and, unless told
 *   otherwise, unregisters. Used by NSEs and forwarders (and for `NSM_REGISTER_SERVICE=true`).
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
import { elementLog, registryChain, type NseHandler, type NsHandler, type RegistryHandler } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { CancelledError, errorMessage } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/log.js';
import { linkSignals } from '../../core/signals.js';
import type { TokenGenerator } from '../../core/token.js';
import type { ChannelPool } from '../../core/transport.js';
import { authorizeRegistryClient } from '../authorize/index.js';
import { nsConnectClient, nseConnectClient } from '../connect/index.js';
import { nsHealClient, nseHealClient } from '../heal/index.js';
import { Backoff, DEFAULT_RETRY_MAX_MS, DEFAULT_RETRY_MIN_MS, clockDelay } from '../refresh/backoff.js';
import { nseRefreshClient } from '../refresh/index.js';

/** Bound of one Register attempt of `startRegistration`. */
export const DEFAULT_REGISTER_TIMEOUT_MS = 15_000;
/** Bound of the Unregister on `stop()`. */
export const DEFAULT_UNREGISTER_TIMEOUT_MS = 3_000;

export interface RegistryClientDeps {
  readonly pool: ChannelPool;
  /** Where to register: the local nsmgr (NSE, forwarder) or the registry itself. */
  readonly url: string;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Lifetime of the client: refresh and heal stop when it aborts. */
  readonly signal?: AbortSignal;
  /**
   * A secure hop: Register/Unregister carry a token for the server and the registry path (registry/connect),
   * and the path the server answers is checked (registry/authorize client). Absent on an insecure hop.
   */
  readonly tokens?: TokenGenerator;
}

export interface RegistryClientOptions {
  readonly dialTimeout?: number;
  readonly retryMin?: number;
  readonly retryMax?: number;
}

/** NSE registry client chain: heal → refresh → authorize (secure hops) → connect. */
export function nseRegistryClient(deps: RegistryClientDeps, options: RegistryClientOptions = {}): NseHandler {
  const bg = { clock: deps.clock, log: deps.log, signal: deps.signal };
  const retry = { retryMin: options.retryMin, retryMax: options.retryMax };
  return registryChain('nse-registry-client', [
    nseHealClient(bg, retry),
    nseRefreshClient(bg, retry),
    authorizeRegistryClient<NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceEndpointResponse>({ pool: deps.pool, url: deps.url, clock: deps.clock }, { insecure: !deps.tokens }),
    nseConnectClient({ pool: deps.pool, url: deps.url, clock: deps.clock, tokens: deps.tokens }, { dialTimeout: options.dialTimeout }),
  ]);
}

/** NS registry client chain: heal → authorize (secure hops) → connect. */
export function nsRegistryClient(deps: RegistryClientDeps, options: RegistryClientOptions = {}): NsHandler {
  const bg = { clock: deps.clock, log: deps.log, signal: deps.signal };
  return registryChain('ns-registry-client', [
    nsHealClient(bg, { retryMin: options.retryMin, retryMax: options.retryMax }),
    authorizeRegistryClient<NetworkService, NetworkServiceQuery, NetworkServiceResponse>({ pool: deps.pool, url: deps.url, clock: deps.clock }, { insecure: !deps.tokens }),
    nsConnectClient({ pool: deps.pool, url: deps.url, clock: deps.clock, tokens: deps.tokens }, { dialTimeout: options.dialTimeout }),
  ]);
}

export interface Registration<T> {
  /** Resolves with the registry's answer to the first successful Register; rejects if stopped before. */
  readonly registered: Promise<T>;
  /** Stops retries, refresh and heal; then unregisters unless `{ unregister: false }`. Never throws. */
  stop(opts?: { unregister?: boolean }): Promise<void>;
}

export interface RegistrationOptions {
  readonly retryMin?: number;
  readonly retryMax?: number;
  readonly registerTimeout?: number;
  readonly unregisterTimeout?: number;
}

/**
 * A chain to register through: either a handler, or a factory that builds one bound to the
 * registration's lifetime (so `stop({ unregister: false })` also ends the chain's refresh and heal).
 */
export type ClientSource<H> = H | ((lifetime: AbortSignal) => H);

export interface NseRegistrationDeps {
  readonly nse: NetworkServiceEndpoint;
  readonly client: ClientSource<NseHandler>;
  readonly log?: Logger;
  readonly clock?: Clock;
}

export interface NsRegistrationDeps {
  readonly ns: NetworkService;
  readonly client: ClientSource<NsHandler>;
  readonly log?: Logger;
  readonly clock?: Clock;
}

export function startRegistration(deps: NseRegistrationDeps, options: RegistrationOptions = {}): Registration<NetworkServiceEndpoint> {
  return start('nse', NseFns.fromPartial(deps.nse), deps.client, deps, options, (x) => NseFns.fromPartial(x));
}

export function startNsRegistration(deps: NsRegistrationDeps, options: RegistrationOptions = {}): Registration<NetworkService> {
  return start('ns', NsFns.fromPartial(deps.ns), deps.client, deps, options, (x) => NsFns.fromPartial(x));
}

function start<T extends { name: string }, Q, R>(
  kind: string,
  item: T,
  source: ClientSource<RegistryHandler<T, Q, R>>,
  deps: { log?: Logger; clock?: Clock },
  options: RegistrationOptions,
  clone: (x: T) => T,
): Registration<T> {
  const clock = deps.clock ?? realClock;
  const log = elementLog((deps.log ?? silentLogger).child({ [kind]: item.name }), 'registration');
  const config = Object.freeze({
    retryMin: options.retryMin ?? DEFAULT_RETRY_MIN_MS,
    retryMax: options.retryMax ?? DEFAULT_RETRY_MAX_MS,
    registerTimeout: options.registerTimeout ?? DEFAULT_REGISTER_TIMEOUT_MS,
    unregisterTimeout: options.unregisterTimeout ?? DEFAULT_UNREGISTER_TIMEOUT_MS,
  });
  const lifetime = new AbortController();
  const handler = typeof source === 'function' ? source(lifetime.signal) : source;
  let succeeded = false;

  const registered = (async () => {
    const backoff = new Backoff(config.retryMin, config.retryMax);
    for (;;) {
      if (lifetime.signal.aborted) throw new CancelledError(`registration of ${kind} ${item.name} stopped before it succeeded`);
      const linked = linkSignals([lifetime.signal], config.registerTimeout);
      try {
        const resp = await handler.register(clone(item), newContext({ signal: linked.signal, log }));
        succeeded = true;
        log.info({ url: (resp as { url?: string }).url, expires: (resp as { expirationTime?: Date }).expirationTime }, 'registered');
        return resp;
      } catch (err) {
        if (lifetime.signal.aborted) throw new CancelledError(`registration of ${kind} ${item.name} stopped before it succeeded`, { cause: err });
        const wait = backoff.next();
        log.warn({ err: errorMessage(err), retryInMs: wait }, 'register failed; retrying');
        await clockDelay(clock, wait, lifetime.signal).catch(() => {});
      } finally {
        linked.dispose();
      }
    }
  })();
  registered.catch(() => {});

  let stopping: Promise<void> | undefined;
  return {
    registered,
    stop(opts = {}) {
      stopping ??= (async () => {
        lifetime.abort(new CancelledError('registration stopped'));
        await registered.catch(() => {});
        if (!succeeded || opts.unregister === false) return;
        const linked = linkSignals([], config.unregisterTimeout);
        try {
          await handler.unregister(clone(item), newContext({ signal: linked.signal, log }));
          log.info('unregistered');
        } catch (err) {
          log.warn({ err: errorMessage(err) }, 'unregister failed; the registry will expire the registration');
        } finally {
          linked.dispose();
        }
      })();
      return stopping;
    },
  };
}
