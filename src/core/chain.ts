/**
 * Chain composition. A component is an ordered array of small elements; `next` is an argument.
 * Each element may declare `requires` (names/capabilities that must come earlier) and `provides`;
 * the order is checked when the chain is built, never at the first request.
 *
 * Logging: every element is called with a context whose `ctx.log` is the caller's logger with
 * `{ element: <name> }` bound, so elements log through `ctx.log` and never name themselves. The element
 * loggers are made once per (caller logger, element) and kept, so a call costs one context copy per
 * element. Bindings an element adds with `ctx.log.child(...)` (begin's `{ connId }`) reach later elements
 * without the adding element's name (see `elementLog`).
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
import type { Logger } from './log.js';

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

// ---- Element loggers ------------------------------------------------------------------------------

/** On an element logger: the logger it was derived from (what later elements derive theirs from). */
const CALLER = Symbol('chain.caller');
type ElementLogger = Logger & { [CALLER]?: Logger };

/**
 * `log` with `{ element }` bound. An element logger's `child(b)` is `{ ...b, element }` over the caller's
 * `child(b)`, so bindings an element adds flow on to later elements while its name stays on its own lines
 * only: no line ever carries two element names. Also for an element's background logger that re-enters
 * the chain (`newContext({ log })`).
 */
export function elementLog(log: Logger, element: string): Logger {
  const caller = (log as ElementLogger)[CALLER] ?? log;
  const child: ElementLogger = caller.child({ element });
  child[CALLER] = caller;
  (child as { child: unknown }).child = (bindings: Record<string, unknown>, options?: object) => elementLog(caller.child(bindings, options), element);
  return child;
}

/**
 * The context an element is called with: the caller's, with the element's logger, which is made once per
 * caller logger (a connection's, the server's) and remembered; a run of calls with the same caller logger
 * skips even the lookup.
 */
function elementContexts(element: string): (ctx: CallContext) => CallContext {
  const loggers = new WeakMap<Logger, Logger>();
  let lastCaller: Logger | undefined;
  let lastLog: Logger | undefined;
  return (ctx) => {
    if (ctx.log !== lastCaller) {
      let log = loggers.get(ctx.log);
      if (log === undefined) loggers.set(ctx.log, (log = elementLog(ctx.log, element)));
      lastCaller = ctx.log;
      lastLog = log;
    }
    return { signal: ctx.signal, deadline: ctx.deadline, state: ctx.state, log: lastLog!, metadata: ctx.metadata, events: ctx.events, peer: ctx.peer, peerIdentity: ctx.peerIdentity, setResponseHeader: ctx.setResponseHeader };
  };
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
  return compose(name, elements, options.tail ?? tailHandler, options.given, (el, after, context) => ({
    request: (req, ctx) => el.request(req, context(ctx), after),
    close: (conn, ctx) => el.close(conn, context(ctx), after),
  }));
}

/**
 * Checks the order, then links the elements from the tail backwards: `link` makes the handler that calls
 * `el` with its element context and the handler after it.
 */
function compose<E extends Ordered, H>(
  chainName: string,
  elements: ReadonlyArray<E>,
  tail: H,
  given: readonly string[] | undefined,
  link: (el: E, after: H, context: (ctx: CallContext) => CallContext) => H,
): H {
  checkOrder(chainName, elements, given);
  let next = tail;
  for (let i = elements.length - 1; i >= 0; i--) next = link(elements[i]!, next, elementContexts(elements[i]!.name));
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
  return compose<RegistryElement<T, Q, R>, RegistryHandler<T, Q, R>>(name, elements, options.tail ?? registryTail<T, Q, R>(), options.given, (el, after, context) => ({
    register: (item, ctx) => el.register(item, context(ctx), after),
    find: (q, ctx) => el.find(q, context(ctx), after),
    unregister: (item, ctx) => el.unregister(item, context(ctx), after),
  }));
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
