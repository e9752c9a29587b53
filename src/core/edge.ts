/**
 * Server edge: turns chains into nice-grpc service implementations. Builds the call context from the
 * gRPC call (signal, metadata, the caller's netns and mTLS identity), and maps our errors to gRPC status
 * codes here and nowhere else.
 */
import type { CallContext as GrpcCallContext, Metadata } from 'nice-grpc';
import type { ConnectionEvent, MonitorConnectionServiceImplementation, MonitorScopeSelector } from '../api/gen/connection.js';
import type { NetworkServiceImplementation } from '../api/gen/networkservice.js';
import type {
  NetworkServiceEndpointRegistryServiceImplementation,
  NetworkServiceRegistryServiceImplementation,
} from '../api/gen/registry.js';
import type { NetworkServiceHandler, NseHandler, NsHandler, RegistryHandler } from './chain.js';
import { newContext, type CallContext } from './context.js';
import { toServerError } from './errors.js';
import { peerIdentityOf, peerOf } from './grpc-server.js';
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

function edgeContext(call: { signal: AbortSignal; metadata?: Metadata; peer?: string; header?: Metadata }, log: Logger): CallContext {
  const header = call.header;
  return newContext({
    signal: call.signal,
    metadata: metadataRecord(call.metadata),
    log,
    peer: () => peerOf(call.peer),
    peerIdentity: peerIdentityOf(call.peer),
    setResponseHeader: header && ((key, value) => void header.set(key, value)),
  });
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

/** MonitorConnections with our errors mapped (a malformed selector is INVALID_ARGUMENT, not UNKNOWN). */
export function monitorConnectionService(impl: { monitorConnections(s: MonitorScopeSelector, call: { signal: AbortSignal }): AsyncIterable<ConnectionEvent> }): MonitorConnectionServiceImplementation {
  return {
    async *monitorConnections(selector, call) {
      try {
        yield* impl.monitorConnections(selector, call);
      } catch (err) {
        if (call.signal.aborted) return;
        throw toServerError(err);
      }
    },
  };
}

/** Register, Unregister and Find of one registry kind; a Find cancelled by its caller ends quietly. */
function registryService<T, Q, R>(handler: RegistryHandler<T, Q, R>, log: Logger) {
  return {
    register: (item: T, call: GrpcCallContext) => mapped(() => handler.register(item, edgeContext(call, log))),
    unregister: (item: T, call: GrpcCallContext) => mapped(async () => (await handler.unregister(item, edgeContext(call, log)), {})),
    async *find(query: Q, call: GrpcCallContext): AsyncIterable<R> {
      try {
        yield* handler.find(query, edgeContext(call, log));
      } catch (err) {
        if (call.signal.aborted) return;
        throw toServerError(err);
      }
    },
  };
}

export function nseRegistryService(handler: NseHandler, log: Logger): NetworkServiceEndpointRegistryServiceImplementation {
  return registryService(handler, log);
}

export function nsRegistryService(handler: NsHandler, log: Logger): NetworkServiceRegistryServiceImplementation {
  return registryService(handler, log);
}
