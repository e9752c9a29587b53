/**
 * The shared machinery of `beginServer` and `beginClient`: per-connection entries (state store, lifetime,
 * last request, the `next` handler) and the event factory. See `server.ts` / `client.ts` for the element
 * headers.
 */
import { Connection, State } from '../../api/gen/connection.js';
import { ConnectionContext } from '../../api/gen/connectioncontext.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { cloneConnection, cloneRequest, currentSegment, prevSegment } from '../../api/helpers.js';
import type { NetworkServiceElement, NetworkServiceHandler } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import { newContext, timeLeft, withContext, type CallContext, type EventFactory } from '../../core/context.js';
import { CancelledError, InvalidArgumentError, NotFoundError, PermissionDeniedError, errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { PeerIdentity } from '../../security/tls.js';
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
  /** Server: number of callers' connections bound to a connection of this hop. */
  readonly bindings: number;
  /**
   * Forgets every connection without closing it downstream (the component is stopping, as a process
   * that exits): aborts each `events.lifetime`, so timers and watches tied to it end.
   */
  forgetAll(): void;
}

export interface BeginDeps {
  /** Time of the event deadlines. Default the real clock. */
  readonly clock?: Clock;
}

class Entry {
  readonly state = new StateStore();
  /** Server: the caller's connection this one is for (`callerKey`), when it came from a previous hop. */
  caller?: string;
  readonly lifetime = new AbortController();
  established = false;
  /** Last successful request, its `connection` being the connection returned by the rest of the chain. */
  request?: NetworkServiceRequest;
  /** Client: the connection last returned to the caller (base of the merge). */
  returned?: Connection;
  next!: NetworkServiceHandler;
  metadata: Readonly<Record<string, string>> = {};
  /** The caller's mTLS identity on the last Request: events (a timeout's Close) run as that caller, as upstream's stored context does. */
  peerIdentity?: PeerIdentity;
  budget = 0;
  events!: EventFactory;
  constructor(
    readonly id: string,
    public log: Logger,
  ) {}
}

/**
 * The caller's connection of a server-side call, as one key: the previous hop's segment (name and id) and,
 * when the call came over a unix socket, the caller's netns (a client in another pod that names the same
 * segment is another caller); undefined at the first hop.
 */
async function callerKey(conn: Connection, ctx: CallContext): Promise<string | undefined> {
  const prev = prevSegment(conn);
  if (!prev) return undefined;
  const from = ctx.peer ? ((await ctx.peer().catch(() => undefined))?.netns ?? '') : '';
  return `${from}\u0000${prev.name}\u0000${prev.id}`;
}

/**
 * Server: the id this hop gave each caller's connection, while that connection is known here (an entry,
 * or a Request or Close of it running or queued). `pending` counts the calls of the caller's connection
 * in progress; the binding goes when none is and no entry has its id.
 */
interface Binding {
  id: string;
  pending: number;
}

/** The per-connection entries of one begin element, and what the element and the events do with them. */
class Entries {
  readonly #entries = new Map<string, Entry>();
  readonly #bindings = new Map<string, Binding>();
  readonly serializer = new KeyedSerializer();

  constructor(
    readonly kind: 'server' | 'client',
    readonly config: BeginConfig,
    readonly clock: Clock,
  ) {}

  get size(): number {
    return this.#entries.size;
  }

  /** Number of callers' connections bound to an id of this hop (tests check for leaks). */
  get bindings(): number {
    return this.#bindings.size;
  }

  /**
   * Server, before a call is serialized: the id this hop's connection for the caller's connection has.
   * When update-path gave the call an id this hop does not know while the caller's connection is already
   * bound to another, the call is for that one: its id and this hop's segment id are set to it (so
   * concurrent first Requests of one connection are one connection here, serialized, and a Close that
   * names only the caller's segment closes it). Otherwise the call's id is bound, if nothing was.
   * Returns the id and the release to call once the call settled.
   */
  async bind(conn: Connection, ctx: CallContext, kind: 'request' | 'close'): Promise<{ id: string; key?: string; release: () => void }> {
    const key = this.kind === 'server' ? await callerKey(conn, ctx) : undefined;
    // From here on nothing awaits: finding or making the binding is one step.
    let b = key === undefined ? undefined : this.#bindings.get(key);
    if (key === undefined || (!b && kind === 'close')) return { id: conn.id, release: () => undefined };
    if (b && b.id !== conn.id && !this.#entries.has(conn.id)) {
      conn.id = b.id;
      currentSegment(conn)!.id = b.id;
    }
    if (!b) this.#bindings.set(key, (b = { id: conn.id, pending: 0 }));
    const binding = b;
    binding.pending++;
    return {
      id: conn.id,
      key,
      release: () => {
        binding.pending--;
        this.#unbind(key, binding);
      },
    };
  }

  #unbind(key: string, b: Binding): void {
    if (b.pending === 0 && !this.#entries.has(b.id) && this.#bindings.get(key) === b) this.#bindings.delete(key);
  }

  forgetAll(): void {
    for (const entry of [...this.#entries.values()]) this.drop(entry, 'forgotten: component stopped');
  }

  /** Request of `id` by the caller, already serialized. */
  async request(id: string, req: NetworkServiceRequest, ctx: CallContext, next: NetworkServiceHandler, caller?: string): Promise<Connection> {
    throwIfAborted(ctx.signal);
    let entry = this.#entries.get(id);
    if (this.kind === 'server' && entry?.established && req.connection!.state === State.RESELECT_REQUESTED) {
      await this.#reselected(entry, ctx);
      entry = undefined;
    }
    entry ??= this.#create(id, ctx, caller);
    const sent = this.kind === 'client' && entry.established ? { ...req, connection: merge(entry.returned!, req.connection!, entry.request!.connection!) } : req;
    entry.next = next;
    entry.metadata = ctx.metadata;
    entry.peerIdentity = ctx.peerIdentity;
    const left = timeLeft(ctx, this.config.eventTimeout, this.clock.now());
    entry.budget = left > 0 ? left : this.config.eventTimeout;
    let out: Connection;
    try {
      out = await next.request(sent, this.#inner(entry, ctx));
    } catch (err) {
      if (!entry.established) this.drop(entry, 'failed its first request');
      throw err;
    }
    if (this.kind === 'server') out.state = State.UP;
    this.#commit(entry, sent, out, true);
    return out;
  }

  /**
   * Close of `id` by the caller, already serialized. Nothing established under it: nothing to close
   * (upstream). A Close that fails is still a close (the connection is forgotten), except one refused
   * for who asked (PermissionDenied): that was never the owner's Close, and the connection stays.
   */
  async close(id: string, ctx: CallContext): Promise<void> {
    const entry = this.#entries.get(id);
    if (!entry || !entry.established) return;
    try {
      await this.#closeStored(entry, this.#inner(entry, ctx));
    } catch (err) {
      if (err instanceof PermissionDeniedError) throw err;
      this.drop(entry, 'closed');
      throw err;
    }
    this.drop(entry, 'closed');
  }

  drop(entry: Entry, why: string): void {
    if (this.#entries.get(entry.id) === entry) this.#entries.delete(entry.id);
    const b = entry.caller === undefined ? undefined : this.#bindings.get(entry.caller);
    if (b) this.#unbind(entry.caller!, b);
    entry.established = false;
    if (!entry.lifetime.signal.aborted) entry.lifetime.abort(new CancelledError(`connection ${entry.id} ${why}`));
    entry.state.clear();
  }

  /** `events.request`: re-Request the stored request below begin (after closing it, for a reselect). */
  async eventRequest(entry: Entry, opts: { reselect?: boolean; signal?: AbortSignal }): Promise<Connection> {
    if (this.#entries.get(entry.id) !== entry || !entry.established) throw new NotFoundError(`connection ${entry.id} is not established`);
    const { ctx, dispose } = this.#eventContext(entry, opts.signal);
    try {
      const req = cloneRequest(entry.request!);
      if (opts.reselect) {
        try {
          await this.#closeStored(entry, ctx);
        } catch (err) {
          entry.log.warn({ err: errorMessage(err) }, 'reselect: closing the old connection failed; requesting anyway');
        }
        this.config.reselect(req);
      }
      const out = await entry.next.request(req, ctx);
      out.state = State.UP;
      this.#commit(entry, req, out, false);
      return out;
    } finally {
      dispose();
    }
  }

  /** `events.close`: Close the stored connection below begin and forget it. */
  async eventClose(entry: Entry, opts: { signal?: AbortSignal }): Promise<void> {
    if (this.#entries.get(entry.id) !== entry || !entry.established) return;
    const { ctx, dispose } = this.#eventContext(entry, opts.signal);
    try {
      await this.#closeStored(entry, ctx);
    } finally {
      dispose();
      this.drop(entry, 'closed');
    }
  }

  async #reselected(entry: Entry, ctx: CallContext): Promise<void> {
    entry.log.info('RESELECT_REQUESTED: closing the old connection before processing the request as new');
    try {
      await this.#closeStored(entry, this.#inner(entry, ctx));
    } catch (err) {
      entry.log.warn({ err: errorMessage(err) }, 'closing the old connection failed');
    }
    this.drop(entry, 'reselected');
  }

  #create(id: string, ctx: CallContext, caller: string | undefined): Entry {
    const entry = new Entry(id, ctx.log.child({ connId: id }));
    if (caller !== undefined) entry.caller = caller;
    entry.events = {
      lifetime: entry.lifetime.signal,
      request: (opts = {}) => this.serializer.run(id, () => this.eventRequest(entry, opts)),
      close: (opts = {}) => this.serializer.run(id, () => this.eventClose(entry, opts)),
    };
    this.#entries.set(id, entry);
    return entry;
  }

  #inner(entry: Entry, ctx: CallContext): CallContext {
    return withContext(ctx, { state: entry.state, events: entry.events, log: entry.log });
  }

  /** The context of an event: the stored metadata, caller identity and state, bounded by the time the original call had. */
  #eventContext(entry: Entry, signal?: AbortSignal): { ctx: CallContext; dispose: () => void } {
    const linked = linkSignals([signal], entry.budget);
    const ctx = newContext({
      signal: linked.signal,
      deadline: this.clock.now() + entry.budget,
      state: entry.state,
      log: entry.log,
      metadata: entry.metadata,
      peerIdentity: entry.peerIdentity,
      events: entry.events,
    });
    return { ctx, dispose: linked.dispose };
  }

  #commit(entry: Entry, req: NetworkServiceRequest, out: Connection, returned: boolean): void {
    entry.established = true;
    entry.request = cloneRequest({ ...req, connection: out });
    if (returned) entry.returned = cloneConnection(out);
  }

  async #closeStored(entry: Entry, ctx: CallContext): Promise<void> {
    await entry.next.close(cloneConnection(entry.request!.connection!), ctx);
  }
}

export function createBegin(kind: 'server' | 'client', config: BeginConfig, deps: BeginDeps = {}): BeginElement {
  const entries = new Entries(kind, config, deps.clock ?? realClock);
  return {
    name: `begin-${kind}`,
    provides: ['begin', 'state', 'events'],
    get size() {
      return entries.size;
    },
    get busy() {
      return entries.serializer.size;
    },
    get bindings() {
      return entries.bindings;
    },
    forgetAll: () => entries.forgetAll(),
    async request(req, ctx, next) {
      // Already inside a begin (an event, or a client chain run by `connect`): the caller serializes.
      if (ctx.events) return next.request(req, ctx);
      if (!req.connection?.id) throw new InvalidArgumentError('connection.id', req.connection?.id ?? '', 'must not be empty (update-path comes before begin)');
      const { id, key, release } = await entries.bind(req.connection, ctx, 'request');
      try {
        return await entries.serializer.run(id, () => entries.request(id, req, ctx, next, key));
      } finally {
        release();
      }
    },
    async close(conn, ctx, next) {
      if (ctx.events) return next.close(conn, ctx);
      const { id, release } = await entries.bind(conn, ctx, 'close');
      try {
        return await entries.serializer.run(id, () => entries.close(id, ctx));
      } finally {
        release();
      }
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
