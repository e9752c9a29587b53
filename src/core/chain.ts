/**
 * Chain composition. A component is an ordered array of small elements; `next` is an argument.
 * Each element may declare `requires` (names/capabilities that must come earlier) and `provides`;
 * the order is checked when the chain is built, never at the first request.
 */
import type { Connection } from '../api/gen/connection.js';
import type { NetworkServiceRequest } from '../api/gen/networkservice.js';
import type {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceEndpointResponse,
  NetworkServiceQuery,
  NetworkServiceResponse,
} from '../api/gen/registry.js';
import type { CallContext } from './context.js';
import { ChainOrderError } from './errors.js';

export interface Ordered {
  readonly name: string;
  readonly requires?: readonly string[];
  readonly provides?: readonly string[];
}

/** Throws ChainOrderError naming the element and the missing capability. */
export function checkOrder(chainName: string, elements: ReadonlyArray<Ordered>, given: readonly string[] = []): void {
  const seen = new Set<string>(given);
  for (const e of elements) {
    for (const r of e.requires ?? []) {
      if (!seen.has(r)) {
        throw new ChainOrderError(
          `chain ${chainName}: element "${e.name}" requires "${r}" earlier in the chain; order is [${elements.map((x) => x.name).join(', ')}]`,
        );
      }
    }
    seen.add(e.name);
    for (const p of e.provides ?? []) seen.add(p);
  }
}

// ---- NetworkService ------------------------------------------------------------------------------

export interface NetworkServiceHandler {
  request(req: NetworkServiceRequest, ctx: CallContext): Promise<Connection>;
  close(conn: Connection, ctx: CallContext): Promise<void>;
}

export interface NetworkServiceElement extends Ordered {
  request(req: NetworkServiceRequest, ctx: CallContext, next: NetworkServiceHandler): Promise<Connection>;
  close(conn: Connection, ctx: CallContext, next: NetworkServiceHandler): Promise<void>;
}

/** The end of every chain: returns the request's connection, closes nothing. */
export const tailHandler: NetworkServiceHandler = {
  request: async (req) => req.connection!,
  close: async () => {},
};

export function networkServiceChain(
  name: string,
  elements: ReadonlyArray<NetworkServiceElement>,
  options: { tail?: NetworkServiceHandler; given?: readonly string[] } = {},
): NetworkServiceHandler {
  checkOrder(name, elements, options.given);
  let next: NetworkServiceHandler = options.tail ?? tailHandler;
  for (let i = elements.length - 1; i >= 0; i--) {
    const el = elements[i];
    const after = next;
    next = {
      request: (req, ctx) => el.request(req, ctx, after),
      close: (conn, ctx) => el.close(conn, ctx, after),
    };
  }
  return next;
}

/** Element that only passes through; base for elements that act on one side. */
export function passThrough(name: string, extra: Partial<NetworkServiceElement> = {}): NetworkServiceElement {
  return {
    name,
    request: (req, ctx, next) => next.request(req, ctx),
    close: (conn, ctx, next) => next.close(conn, ctx),
    ...extra,
  };
}

// ---- Registries ----------------------------------------------------------------------------------

export interface RegistryHandler<T, Q, R> {
  register(item: T, ctx: CallContext): Promise<T>;
  find(query: Q, ctx: CallContext): AsyncIterable<R>;
  unregister(item: T, ctx: CallContext): Promise<void>;
}

export interface RegistryElement<T, Q, R> extends Ordered {
  register(item: T, ctx: CallContext, next: RegistryHandler<T, Q, R>): Promise<T>;
  find(query: Q, ctx: CallContext, next: RegistryHandler<T, Q, R>): AsyncIterable<R>;
  unregister(item: T, ctx: CallContext, next: RegistryHandler<T, Q, R>): Promise<void>;
}

export type NseHandler = RegistryHandler<NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceEndpointResponse>;
export type NsHandler = RegistryHandler<NetworkService, NetworkServiceQuery, NetworkServiceResponse>;
export type NseElement = RegistryElement<NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceEndpointResponse>;
export type NsElement = RegistryElement<NetworkService, NetworkServiceQuery, NetworkServiceResponse>;

export function registryTail<T, Q, R>(): RegistryHandler<T, Q, R> {
  return {
    register: async (item) => item,
    find: async function* () {},
    unregister: async () => {},
  };
}

export function registryChain<T, Q, R>(
  name: string,
  elements: ReadonlyArray<RegistryElement<T, Q, R>>,
  options: { tail?: RegistryHandler<T, Q, R>; given?: readonly string[] } = {},
): RegistryHandler<T, Q, R> {
  checkOrder(name, elements, options.given);
  let next: RegistryHandler<T, Q, R> = options.tail ?? registryTail<T, Q, R>();
  for (let i = elements.length - 1; i >= 0; i--) {
    const el = elements[i];
    const after = next;
    next = {
      register: (item, ctx) => el.register(item, ctx, after),
      find: (q, ctx) => el.find(q, ctx, after),
      unregister: (item, ctx) => el.unregister(item, ctx, after),
    };
  }
  return next;
}

export function registryPassThrough<T, Q, R>(name: string, extra: Partial<RegistryElement<T, Q, R>> = {}): RegistryElement<T, Q, R> {
  return {
    name,
    register: (item, ctx, next) => next.register(item, ctx),
    find: (q, ctx, next) => next.find(q, ctx),
    unregister: (item, ctx, next) => next.unregister(item, ctx),
    ...extra,
  };
}
