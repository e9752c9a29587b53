/**
 * Test support only: a minimal registry served over real gRPC (NS + NSE over Maps, Find with watch,
 * NSE expiry with real timers). Lets the client-side tests run without the registry component; not
 * used by production code. A Find watch buffers changes in an AsyncQueue (`fail` policy, default
 * limit): a watcher that falls that far behind gets ResourceExhaustedError on its stream instead of
 * silently missing a delete.
 */
import { EventEmitter } from 'node:events';
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceEndpointResponse,
  NetworkServiceQuery,
  NetworkServiceResponse,
} from '../../api/gen/registry.js';
import { NetworkServiceEndpointRegistryDefinition, NetworkServiceRegistryDefinition } from '../../api/gen/registry.js';
import type { NseHandler, NsHandler } from '../../core/chain.js';
import type { CallContext } from '../../core/context.js';
import { nseRegistryService, nsRegistryService } from '../../core/edge.js';
import { silentLogger } from '../../core/log.js';
import { AsyncQueue } from '../../core/queue.js';
import { serve, type GrpcServer } from '../../core/transport.js';
import { INSECURE } from '../../security/tls.js';

export interface TestRegistry {
  readonly nses: Map<string, NetworkServiceEndpoint>;
  readonly nss: Map<string, NetworkService>;
  readonly calls: { nseRegister: number; nseUnregister: number; nsRegister: number; nsUnregister: number; finds: number };
  readonly addresses: readonly string[];
  stop(): Promise<void>;
}

/** In-process handlers (no gRPC) with the same semantics; `expireMs` caps NSE expiration. */
export function testRegistryHandlers(expireMs?: number): {
  nse: NseHandler;
  ns: NsHandler;
  nses: Map<string, NetworkServiceEndpoint>;
  nss: Map<string, NetworkService>;
  calls: TestRegistry['calls'];
  close(): void;
} {
  const nses = new Map<string, NetworkServiceEndpoint>();
  const nss = new Map<string, NetworkService>();
  const timers = new Map<string, NodeJS.Timeout>();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const calls = { nseRegister: 0, nseUnregister: 0, nsRegister: 0, nsUnregister: 0, finds: 0 };

  async function* watch<R>(kind: string, initial: R[], match: (r: R) => boolean, watchOn: boolean, ctx: CallContext): AsyncIterable<R> {
    calls.finds++;
    const changes = new AsyncQueue<R>({ signal: ctx.signal, overflow: 'fail', name: `test registry ${kind} watch` });
    const onEvent = (r: R) => {
      if (match(r)) changes.push(r);
    };
    if (watchOn) events.on(kind, onEvent);
    try {
      for (const r of initial) if (match(r)) yield r;
      if (watchOn) yield* changes;
    } finally {
      events.off(kind, onEvent);
      changes.close(true);
    }
  }

  const deleteNse = (name: string) => {
    clearTimeout(timers.get(name));
    timers.delete(name);
    const old = nses.get(name);
    if (!old) return;
    nses.delete(name);
    events.emit('nse', { networkServiceEndpoint: old, deleted: true });
  };

  const nse: NseHandler = {
    async register(item) {
      calls.nseRegister++;
      const stored: NetworkServiceEndpoint = { ...item, initialRegistrationTime: nses.get(item.name)?.initialRegistrationTime ?? new Date() };
      if (expireMs !== undefined) {
        const cap = Date.now() + expireMs;
        const given = item.expirationTime?.getTime();
        stored.expirationTime = new Date(given !== undefined && given < cap ? given : cap);
        clearTimeout(timers.get(item.name));
        timers.set(
          item.name,
          setTimeout(() => deleteNse(item.name), stored.expirationTime.getTime() - Date.now()),
        );
      }
      nses.set(item.name, stored);
      events.emit('nse', { networkServiceEndpoint: stored, deleted: false });
      return stored;
    },
    find(q: NetworkServiceEndpointQuery, ctx) {
      const want = q.networkServiceEndpoint;
      const match = (r: NetworkServiceEndpointResponse) => {
        const e = r.networkServiceEndpoint!;
        if (want?.name && want.name !== e.name) return false;
        if (want?.networkServiceNames.length && !want.networkServiceNames.some((n) => e.networkServiceNames.includes(n))) return false;
        return true;
      };
      const initial = [...nses.values()].map((e) => ({ networkServiceEndpoint: e, deleted: false }));
      return watch('nse', initial, match, q.watch, ctx);
    },
    async unregister(item) {
      calls.nseUnregister++;
      deleteNse(item.name);
    },
  };

  const ns: NsHandler = {
    async register(item) {
      calls.nsRegister++;
      const stored = { ...item, payload: item.payload || 'IP' };
      nss.set(item.name, stored);
      events.emit('ns', { networkService: stored, deleted: false });
      return stored;
    },
    find(q: NetworkServiceQuery, ctx) {
      const match = (r: NetworkServiceResponse) => !q.networkService?.name || q.networkService.name === r.networkService!.name;
      const initial = [...nss.values()].map((e) => ({ networkService: e, deleted: false }));
      return watch('ns', initial, match, q.watch, ctx);
    },
    async unregister(item) {
      calls.nsUnregister++;
      const old = nss.get(item.name);
      if (!old) return;
      nss.delete(item.name);
      events.emit('ns', { networkService: old, deleted: true });
    },
  };

  return {
    nse,
    ns,
    nses,
    nss,
    calls,
    close() {
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}

/** Serves the test registry on `url` (e.g. `unix:///tmp/x/registry.sock`). */
export async function startTestRegistry(url: string, opts: { expireMs?: number; nse?: NseHandler; ns?: NsHandler } = {}): Promise<TestRegistry> {
  const h = testRegistryHandlers(opts.expireMs);
  const server: GrpcServer = await serve(
    [url],
    [
      { definition: NetworkServiceEndpointRegistryDefinition, implementation: nseRegistryService(opts.nse ?? h.nse, silentLogger) },
      { definition: NetworkServiceRegistryDefinition, implementation: nsRegistryService(opts.ns ?? h.ns, silentLogger) },
    ],
    INSECURE,
  );
  return {
    nses: h.nses,
    nss: h.nss,
    calls: h.calls,
    addresses: server.addresses,
    async stop() {
      h.close();
      await server.stop({ force: true });
    },
  };
}
