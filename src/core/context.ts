/**
 * The call context passed explicitly through every chain element: cancellation, deadline, the
 * per-connection state store, the logger, incoming metadata and (after `begin`) the event factory.
 */
import type { Connection } from '../api/gen/connection.js';
import type { Logger } from './log.js';
import { silentLogger } from './log.js';
import type { PeerIdentity } from '../security/tls.js';
import type { Peer } from './peer.js';
import { StateStore } from './state.js';

/** Lets background elements (heal, refresh, timeout, monitor) re-enter the chain from `begin`. */
export interface EventFactory {
  /** Re-Request the stored request down the chain; `reselect` first Closes the old connection. */
  request(opts?: { reselect?: boolean; signal?: AbortSignal }): Promise<Connection>;
  /** Close the connection down the chain and forget it. */
  close(opts?: { signal?: AbortSignal }): Promise<void>;
  /** Aborts when the connection is closed; background work of the connection stops on it. */
  readonly lifetime: AbortSignal;
}

export interface CallContext {
  readonly signal: AbortSignal;
  /** Absolute deadline (epoch ms) of this call, if any. */
  readonly deadline?: number;
  /** Per-connection state (an ephemeral store before `begin`). */
  readonly state: StateStore;
  readonly log: Logger;
  /** Incoming gRPC metadata (server side), lower-case keys. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Set by `begin`. */
  readonly events?: EventFactory;
  /**
   * Server side: the caller at the other end of the unix connection the call came in on (its network
   * namespace, resolved once per connection, on first use); absent for in-process calls, resolves
   * undefined for tcp calls.
   */
  readonly peer?: () => Promise<Peer | undefined>;
  /** Server side, over mTLS: the caller's verified SPIFFE ID and certificate; absent for plaintext and in-process calls. */
  readonly peerIdentity?: PeerIdentity;
  /**
   * Server side, at the gRPC edge: sets a response header of this call (sent with the response; the
   * registry's `path` header). Absent for in-process calls.
   */
  readonly setResponseHeader?: (key: string, value: string) => void;
}

export function newContext(init: Partial<CallContext> = {}): CallContext {
  return {
    signal: init.signal ?? new AbortController().signal,
    deadline: init.deadline,
    state: init.state ?? new StateStore(),
    log: init.log ?? silentLogger,
    metadata: init.metadata ?? {},
    events: init.events,
    peer: init.peer,
    peerIdentity: init.peerIdentity,
    setResponseHeader: init.setResponseHeader,
  };
}

export function withContext(ctx: CallContext, patch: Partial<CallContext>): CallContext {
  return { ...ctx, ...patch };
}

/**
 * Time left at `now` until the context's deadline (ms), or `fallback` when it has none. Pass `now` from the
 * injected clock that also set the deadline; the wall-clock default is for callers without one.
 */
export function timeLeft(ctx: CallContext, fallback: number, now = Date.now()): number {
  return ctx.deadline === undefined ? fallback : Math.max(0, ctx.deadline - now);
}
