/**
 * The terminal element of the registry chains, backed by a `RegistryStore`: Register puts the item
 * (replacing one with the same name) and returns what is stored; Unregister deletes it (a missing
 * name is not an error); Find yields every stored item matching the query template (matchutils
 * semantics) and, when `watch` is set, then streams matching changes as `{item, deleted}` responses
 * until the call's signal aborts or `stop()` is called. The watch is subscribed before the listing, so
 * no change is lost in between (an item changed in that window may be reported twice). Last element
 * of the NS and NSE chains; it calls no `next`. Mirrors upstream `sdk:pkg/registry/core/memory`
 * (`memory.NewNetworkService{,Endpoint}RegistryServer`) on top of a pluggable store.
 */
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceEndpointResponse,
  NetworkServiceQuery,
  NetworkServiceResponse,
} from '../../api/gen/registry.js';
import type { NsElement, NseElement, RegistryElement } from '../../core/chain.js';
import type { CallContext } from '../../core/context.js';
import { linkSignals, ENDED } from '../../core/signals.js';
import { matchNetworkService, matchNetworkServiceEndpoint } from '../matchutils/index.js';
import type { RegistryStore, Store } from '../store.js';

export interface StoreServer<T, Q, R> extends RegistryElement<T, Q, R> {
  /** Ends all Find watches; later Finds end after the listing. */
  stop(): void;
}

function storeServer<T extends { name: string }, Q extends { watch: boolean }, R>(
  element: string,
  store: Store<T>,
  template: (q: Q) => T | undefined,
  matches: (template: T | undefined, item: T) => boolean,
  response: (item: T, deleted: boolean) => R,
): StoreServer<T, Q, R> {
  const lifetime = new AbortController();
  return {
    name: element,
    async register(item, ctx) {
      const stored = await store.put(item, { signal: ctx.signal });
      ctx.log.debug({ name: item.name }, 'stored');
      return stored;
    },
    async unregister(item, ctx) {
      const gone = await store.delete(item.name, { signal: ctx.signal });
      ctx.log.debug({ name: item.name, existed: gone !== undefined }, 'deleted');
    },
    find(query: Q, ctx: CallContext): AsyncIterable<R> {
      return (async function* () {
        const t = template(query);
        // `done` ends the watch also when the consumer stops iterating before the listing is through.
        const done = new AbortController();
        const link = query.watch ? linkSignals([ctx.signal, lifetime.signal, done.signal]) : undefined;
        try {
          const changes = link ? store.watch(link.signal) : undefined;
          for (const item of await store.list({ signal: ctx.signal })) if (matches(t, item)) yield response(item, false);
          if (!changes) return;
          for await (const ev of changes) if (matches(t, ev.item)) yield response(ev.item, ev.type === 'delete');
        } finally {
          done.abort(ENDED);
          link?.dispose();
        }
      })();
    },
    stop() {
      lifetime.abort(ENDED);
    },
  };
}

export function storeNseServer(deps: { store: RegistryStore }): StoreServer<NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceEndpointResponse> & NseElement {
  return storeServer(
    'store-nse',
    deps.store.nse,
    (q) => q.networkServiceEndpoint,
    matchNetworkServiceEndpoint,
    (networkServiceEndpoint, deleted) => ({ networkServiceEndpoint, deleted }),
  );
}

export function storeNsServer(deps: { store: RegistryStore }): StoreServer<NetworkService, NetworkServiceQuery, NetworkServiceResponse> & NsElement {
  return storeServer(
    'store-ns',
    deps.store.ns,
    (q) => q.networkService,
    matchNetworkService,
    (networkService, deleted) => ({ networkService, deleted }),
  );
}
