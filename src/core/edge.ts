/**
 * Server edge: turns chains into nice-grpc service implementations. Builds the call context from the
 * gRPC call (signal, metadata), and maps our errors to gRPC status codes here and nowhere else.
 */
import type { Metadata } from 'nice-grpc';
import type { NetworkServiceImplementation } from '../api/gen/networkservice.js';
import type {
  NetworkServiceEndpointRegistryServiceImplementation,
  NetworkServiceRegistryServiceImplementation,
} from '../api/gen/registry.js';
import type { NetworkServiceHandler, NseHandler, NsHandler } from './chain.js';
import { newContext, type CallContext } from './context.js';
import { toServerError } from './errors.js';
import type { Logger } from './log.js';

export function metadataRecord(md: Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!md) return out;
  for (const [k, v] of md) {
    const first = Array.isArray(v) ? v[0] : v;
    if (typeof first === 'string') out[k.toLowerCase()] = first;
  }
  return out;
}

function edgeContext(call: { signal: AbortSignal; metadata?: Metadata }, log: Logger): CallContext {
  return newContext({ signal: call.signal, metadata: metadataRecord(call.metadata), log });
}

async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toServerError(err);
  }
}

export function networkServiceService(handler: NetworkServiceHandler, log: Logger): NetworkServiceImplementation {
  return {
    request: (req, call) => mapped(() => handler.request(req, edgeContext(call, log))),
    close: (conn, call) => mapped(async () => (await handler.close(conn, edgeContext(call, log)), {})),
  };
}

export function nseRegistryService(handler: NseHandler, log: Logger): NetworkServiceEndpointRegistryServiceImplementation {
  return {
    register: (nse, call) => mapped(() => handler.register(nse, edgeContext(call, log))),
    unregister: (nse, call) => mapped(async () => (await handler.unregister(nse, edgeContext(call, log)), {})),
    async *find(query, call) {
      try {
        yield* handler.find(query, edgeContext(call, log));
      } catch (err) {
        if (call.signal.aborted) return;
        throw toServerError(err);
      }
    },
  };
}

export function nsRegistryService(handler: NsHandler, log: Logger): NetworkServiceRegistryServiceImplementation {
  return {
    register: (ns, call) => mapped(() => handler.register(ns, edgeContext(call, log))),
    unregister: (ns, call) => mapped(async () => (await handler.unregister(ns, edgeContext(call, log)), {})),
    async *find(query, call) {
      try {
        yield* handler.find(query, edgeContext(call, log));
      } catch (err) {
        if (call.signal.aborted) return;
        throw toServerError(err);
      }
    },
  };
}
