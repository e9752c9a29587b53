/**
 * The shared machinery of `beginServer` and `beginClient`: per-connection entries (state store, lifetime,
 * last request, the `next` handler) and the event factory. See `server.ts` / `client.ts` for the element
 * headers.
 */
import { Connection, State } from '../../api/gen/connection.js';
import { ConnectionContext } from '../../api/gen/connectioncontext.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { cloneConnection, cloneRequest } from '../../api/helpers.js';
import type { NetworkServiceElement, NetworkServiceHandler } from '../../core/chain.js';
import { newContext, timeLeft, withContext, type CallContext, type EventFactory } from '../../core/context.js';
import { CancelledError, InvalidArgumentError, NotFoundError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { linkSignals, throwIfAborted } from '../../core/signals.js';
import { StateStore } from '../../core/state.js';
import { KeyedSerializer } from './serializer.js';

/** Default bound (ms) of an internal event when the original call had no deadline (upstream request timeout). */
export const DEFAULT_EVENT_TIMEOUT_MS = 15_000;

/** Applied to a copy of the stored request before a reselect re-Request (upstream `DefaultReselectFunc`). */
export type ReselectFunc = (req: NetworkServiceRequest) => void;

/** `mechanism = undefined`, `networkServiceEndpointName = ''`, `state = RESELECT_REQUESTED`; the rest is kept. */
export const defaultReselect: ReselectFunc = (req) => {
  if (!req.connection) return;
  req.connection.mechanism = undefined;
  req.connection.networkServiceEndpointName = '';
  req.connection.state = State.RESELECT_REQUESTED;
};

/** Keeps the selected endpoint (upstream `ReselectWithSameEndpointFunc`). */
export const reselectWithSameEndpoint: ReselectFunc = (req) => {
  if (!req.connection) return;
  req.connection.mechanism = undefined;
  req.connection.state = State.RESELECT_REQUESTED;
};

export interface BeginOptions {
  /** Bound (ms) of internal events when the original call had no deadline. Default DEFAULT_EVENT_TIMEOUT_MS. */
  readonly eventTimeout?: number;
  /** Applied to the stored request on `events.request({ reselect: true })`. Default `defaultReselect`. */
  readonly reselect?: ReselectFunc;
}

export interface BeginConfig {
  readonly eventTimeout: number;
  readonly reselect: ReselectFunc;
}

export function resolveBeginOptions(options: BeginOptions): BeginConfig {
  const eventTimeout = options.eventTimeout ?? DEFAULT_EVENT_TIMEOUT_MS;
  if (!Number.isFinite(eventTimeout) || eventTimeout <= 0) {
    throw new InvalidArgumentError('begin eventTimeout', eventTimeout, 'must be a positive number of milliseconds');
  }
  return Object.freeze({ eventTimeout, reselect: options.reselect ?? defaultReselect });
}

export interface BeginElement extends NetworkServiceElement {
  /** Number of connections with state (tests check for leaks). */
  readonly size: number;
  /** Number of connection ids with queued work. */
  readonly busy: number;
  /**
   * Forgets every connection without closing it downstream (the component is stopping, as a process
   * that exits): aborts each `events.lifetime`, so timers and watches tied to it end.
   */
  forgetAll(): void;
}

class Entry {
  readonly state = new StateStore();
  readonly lifetime = new AbortController();
  established = false;
  /** Last successful request, its `connection` being the connection returned by the rest of the chain. */
  request?: NetworkServiceRequest;
  /** Client: the connection last returned to the caller (base of the merge). */
  returned?: Connection;
  next!: NetworkServiceHandler;
  metadata: Readonly<Record<string, string>> = {};
  budget = 0;
  events!: EventFactory;
  constructor(
    readonly id: string,
    public log: Logger,
  ) {}
}

export function createBegin(kind: 'server' | 'client', config: BeginConfig): BeginElement {
  const entries = new Map<string, Entry>();
  const serializer = new KeyedSerializer();

  const drop = (entry: Entry, why: string) => {
    if (entries.get(entry.id) === entry) entries.delete(entry.id);
    entry.established = false;
    if (!entry.lifetime.signal.aborted) entry.lifetime.abort(new CancelledError(`connection ${entry.id} ${why}`));
    entry.state.clear();
  };

  const inner = (entry: Entry, ctx: CallContext): CallContext =>
    withContext(ctx, { state: entry.state, events: entry.events, log: entry.log });

  const eventContext = (entry: Entry, signal?: AbortSignal) => {
    const linked = linkSignals([signal], entry.budget);
    const ctx = newContext({
      signal: linked.signal,
      deadline: Date.now() + entry.budget,
      state: entry.state,
      log: entry.log,
      metadata: entry.metadata,
      events: entry.events,
    });
    return { ctx, dispose: linked.dispose };
  };

  const commit = (entry: Entry, req: NetworkServiceRequest, out: Connection, returned: boolean) => {
    entry.established = true;
    entry.request = cloneRequest({ ...req, connection: out });
    if (returned) entry.returned = cloneConnection(out);
  };

  const closeStored = async (entry: Entry, ctx: CallContext) => {
    await entry.next.close(cloneConnection(entry.request!.connection!), ctx);
  };

  const create = (id: string, ctx: CallContext): Entry => {
    const entry = new Entry(id, ctx.log.child({ connId: id }));
    entry.events = {
      lifetime: entry.lifetime.signal,
      request: (opts = {}) =>
        serializer.run(id, async () => {
          if (entries.get(id) !== entry || !entry.established) throw new NotFoundError(`connection ${id} is not established`);
          const { ctx: ectx, dispose } = eventContext(entry, opts.signal);
          try {
            const req = cloneRequest(entry.request!);
            if (opts.reselect) {
              try {
                await closeStored(entry, ectx);
              } catch (err) {
                entry.log.warn({ err: errorMessage(err) }, 'reselect: closing the old connection failed; requesting anyway');
              }
              config.reselect(req);
            }
            const out = await entry.next.request(req, ectx);
            out.state = State.UP;
            commit(entry, req, out, false);
            return out;
          } finally {
            dispose();
          }
        }),
      close: (opts = {}) =>
        serializer.run(id, async () => {
          if (entries.get(id) !== entry || !entry.established) return;
          const { ctx: ectx, dispose } = eventContext(entry, opts.signal);
          try {
            await closeStored(entry, ectx);
          } finally {
            dispose();
            drop(entry, 'closed');
          }
        }),
    };
    entries.set(id, entry);
    return entry;
  };

  return {
    name: `begin-${kind}`,
    provides: ['begin', 'state', 'events'],
    get size() {
      return entries.size;
    },
    get busy() {
      return serializer.size;
    },
    forgetAll() {
      for (const entry of [...entries.values()]) drop(entry, 'forgotten: component stopped');
    },
    async request(req, ctx, next) {
      // Already inside a begin (an event, or a client chain run by `connect`): the caller serializes.
      if (ctx.events) return next.request(req, ctx);
      const id = req.connection?.id ?? '';
      if (id === '') throw new InvalidArgumentError('connection.id', id, 'must not be empty (update-path comes before begin)');
      return serializer.run(id, async () => {
        throwIfAborted(ctx.signal);
        let entry = entries.get(id);
        if (kind === 'server' && entry?.established && req.connection!.state === State.RESELECT_REQUESTED) {
          entry.log.info('RESELECT_REQUESTED: closing the old connection before processing the request as new');
          try {
            await closeStored(entry, inner(entry, ctx));
          } catch (err) {
            entry.log.warn({ err: errorMessage(err) }, 'closing the old connection failed');
          }
          drop(entry, 'reselected');
          entry = undefined;
        }
        entry ??= create(id, ctx);
        let sent = req;
        if (kind === 'client' && entry.established) {
          sent = { ...req, connection: merge(entry.returned!, req.connection!, entry.request!.connection!) };
        }
        entry.next = next;
        entry.metadata = ctx.metadata;
        const left = timeLeft(ctx, config.eventTimeout);
        entry.budget = left > 0 ? left : config.eventTimeout;
        let out: Connection;
        try {
          out = await next.request(sent, inner(entry, ctx));
        } catch (err) {
          if (!entry.established) drop(entry, 'failed its first request');
          throw err;
        }
        if (kind === 'server') out.state = State.UP;
        commit(entry, sent, out, true);
        return out;
      });
    },
    async close(conn, ctx, next) {
      if (ctx.events) return next.close(conn, ctx);
      return serializer.run(conn.id, async () => {
        const entry = entries.get(conn.id);
        // Nothing established under this id: nothing to close (upstream behaviour).
        if (!entry || !entry.established) return;
        try {
          await closeStored(entry, inner(entry, ctx));
        } finally {
          drop(entry, 'closed');
        }
      });
    },
  };
}

/**
 * Client re-Request: start from the connection as the chain last returned it; take the caller's endpoint
 * name and context only where the caller changed them (upstream `mergeConnection`).
 */
function merge(returned: Connection, requested: Connection, current: Connection): Connection {
  const c = cloneConnection(current);
  if (returned.networkServiceEndpointName !== requested.networkServiceEndpointName) {
    c.networkServiceEndpointName = requested.networkServiceEndpointName;
  }
  if (!sameContext(returned.context, requested.context)) {
    c.context = requested.context ? ConnectionContext.fromPartial(requested.context) : undefined;
  }
  return c;
}

function sameContext(a: ConnectionContext | undefined, b: ConnectionContext | undefined): boolean {
  const ea = ConnectionContext.encode(a ?? ConnectionContext.fromPartial({})).finish();
  const eb = ConnectionContext.encode(b ?? ConnectionContext.fromPartial({})).finish();
  return Buffer.compare(Buffer.from(ea), Buffer.from(eb)) === 0;
}
