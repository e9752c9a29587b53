/**
 * `MonitorService`: the per-hop connection store behind the `monitor` element and the
 * `connection.MonitorConnection` gRPC service (upstream `sdk:pkg/networkservice/common/monitor`,
 * `monitor_connection_server.go`).
 *
 * - `update(conn)` stores a copy and broadcasts UPDATE; `delete(conn)` forgets it and broadcasts DELETE.
 * - `monitorConnections(selector)` (the gRPC implementation) first yields one INITIAL_STATE_TRANSFER with
 *   every stored connection matching the selector (possibly empty), then one UPDATE/DELETE event per
 *   matching change, until the call signal aborts or `stop()` is called.
 * - Each subscriber has a bounded `AsyncQueue` that coalesces per connection id (the latest event of a
 *   connection replaces an undelivered older one, so a slow reader sees the final state); beyond
 *   `bufferSize` distinct connections the oldest pending event is dropped and a warning logged. Dropping
 *   the oldest is the policy because an event carries state: the newest ones are what a reader needs to
 *   end up current, and the producer is the Request path, which a slow reader must never fail
 *   (`throw`) or leave with a stale view (`drop-newest`).
 *   A cancelled subscription leaves no listener behind. A selector over the size limits of `api/limits.ts`
 *   is refused (InvalidArgumentError) before anything is sent.
 * - Every connection has a monitor subscription per hop that selects it by a path segment id, so
 *   subscribers and connections are indexed by segment id: an update is matched against the subscribers
 *   of its segments (plus those without an id to select by), and an initial transfer reads only the
 *   connections with the selected id. Setup of N connections costs O(N), not O(N²).
 */
import { ENDED } from '../../core/signals.js';
import {
  Connection,
  ConnectionEventType,
  type ConnectionEvent,
  type MonitorConnectionServiceImplementation,
  type MonitorScopeSelector,
} from '../../api/gen/connection.js';
import { cloneConnection, matchesSelector } from '../../api/helpers.js';
import { checkSelector } from '../../api/limits.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/log.js';
import { AsyncQueue } from '../../core/queue.js';

export const DEFAULT_SUBSCRIBER_BUFFER = 1024;

export interface MonitorServiceOptions {
  /** Max distinct pending connections per subscriber. Default DEFAULT_SUBSCRIBER_BUFFER. */
  readonly bufferSize?: number;
  readonly log?: Logger;
}

type Pending = { type: ConnectionEventType; conn: Connection };

/** One `monitorConnections` call: its selector and its pending events. */
interface Subscriber {
  readonly selector: MonitorScopeSelector;
  readonly queue: AsyncQueue<Pending>;
}

/** The segment id a selector needs in a connection's path, when it names one (the index key). */
function selectorKey(sel: MonitorScopeSelector): string | undefined {
  return sel.pathSegments.find((s) => s.id !== '')?.id;
}

/** `set` of `key` in `index`, made on first use. */
function indexAdd<T>(index: Map<string, Set<T>>, key: string, value: T): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(value);
}

function indexDelete<T>(index: Map<string, Set<T>>, key: string, value: T): void {
  const set = index.get(key);
  if (set?.delete(value) && set.size === 0) index.delete(key);
}

const segmentIds = (c: Connection): Set<string> => new Set((c.path?.pathSegments ?? []).map((s) => s.id).filter((id) => id !== ''));

export class MonitorService implements MonitorConnectionServiceImplementation {
  readonly #connections = new Map<string, Connection>();
  /** Connection ids by the segment ids of their paths. */
  readonly #connectionsBySegment = new Map<string, Set<string>>();
  readonly #subscribers = new Set<Subscriber>();
  /** Subscribers by the segment id their selector needs; those without one are in #unkeyed. */
  readonly #subscribersBySegment = new Map<string, Set<Subscriber>>();
  readonly #unkeyed = new Set<Subscriber>();
  readonly #stop = new AbortController();
  readonly #bufferSize: number;
  readonly #log: Logger;

  constructor(options: MonitorServiceOptions = {}) {
    const size = options.bufferSize ?? DEFAULT_SUBSCRIBER_BUFFER;
    if (!Number.isInteger(size) || size < 1) throw new InvalidArgumentError('monitor bufferSize', size, 'must be a positive integer');
    this.#bufferSize = size;
    this.#log = (options.log ?? silentLogger).child({ element: 'monitor-service' });
  }

  /** A copy of the stored connection. */
  get(id: string): Connection | undefined {
    const c = this.#connections.get(id);
    return c && cloneConnection(c);
  }

  list(): Connection[] {
    return [...this.#connections.values()].map(cloneConnection);
  }

  get subscribers(): number {
    return this.#subscribers.size;
  }

  update(conn: Connection): void {
    const c = cloneConnection(conn);
    this.#forget(c.id);
    this.#connections.set(c.id, c);
    for (const id of segmentIds(c)) indexAdd(this.#connectionsBySegment, id, c.id);
    this.#broadcast(ConnectionEventType.UPDATE, c);
  }

  delete(conn: Connection): void {
    const c = cloneConnection(this.#connections.get(conn.id) ?? conn);
    this.#forget(conn.id);
    this.#broadcast(ConnectionEventType.DELETE, c);
  }

  #forget(id: string): void {
    const old = this.#connections.get(id);
    if (!old) return;
    this.#connections.delete(id);
    for (const seg of segmentIds(old)) indexDelete(this.#connectionsBySegment, seg, id);
  }

  /** The stored connections `selector` can match (all of them when it names no segment id). */
  *#candidates(selector: MonitorScopeSelector): Iterable<Connection> {
    const key = selectorKey(selector);
    if (key === undefined) {
      yield* this.#connections.values();
      return;
    }
    for (const id of this.#connectionsBySegment.get(key) ?? []) {
      const c = this.#connections.get(id);
      if (c) yield c;
    }
  }

  /** Ends every subscription (server stop); undelivered events are dropped. */
  stop(): void {
    this.#stop.abort(ENDED);
    for (const s of this.#subscribers) s.queue.close(true);
  }

  #broadcast(type: ConnectionEventType, conn: Connection): void {
    const subs = new Set(this.#unkeyed);
    for (const id of segmentIds(conn)) for (const s of this.#subscribersBySegment.get(id) ?? []) subs.add(s);
    for (const s of subs) {
      if (!matchesSelector(conn, s.selector)) continue;
      if (!s.queue.push({ type, conn }) && !s.queue.closed) {
        this.#log.warn({ dropped: s.queue.dropped }, 'slow monitor subscriber: dropped the oldest pending event');
      }
    }
  }

  async *monitorConnections(selector: MonitorScopeSelector, call: { signal: AbortSignal }): AsyncGenerator<ConnectionEvent> {
    checkSelector(selector);
    const queue = new AsyncQueue<Pending>({
      limit: this.#bufferSize,
      overflow: 'drop-oldest',
      coalesce: (p) => p.conn.id,
      signal: call.signal,
      name: 'monitor subscriber',
    });
    if (this.#stop.signal.aborted) queue.close(true);
    const sub: Subscriber = { selector, queue };
    const key = selectorKey(selector);
    this.#subscribers.add(sub);
    if (key === undefined) this.#unkeyed.add(sub);
    else indexAdd(this.#subscribersBySegment, key, sub);
    try {
      const initial: Record<string, Connection> = {};
      for (const c of this.#candidates(selector)) if (matchesSelector(c, selector)) initial[c.id] = cloneConnection(c);
      yield { type: ConnectionEventType.INITIAL_STATE_TRANSFER, connections: initial };
      for await (const next of queue) yield { type: next.type, connections: { [next.conn.id]: cloneConnection(next.conn) } };
    } finally {
      this.#subscribers.delete(sub);
      if (key === undefined) this.#unkeyed.delete(sub);
      else indexDelete(this.#subscribersBySegment, key, sub);
      queue.close(true);
    }
  }
}
