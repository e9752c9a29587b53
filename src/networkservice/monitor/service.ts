/**
 * `MonitorService`: the per-hop connection store behind the `monitor` element and the
 * `connection.MonitorConnection` gRPC service (upstream `sdk:pkg/networkservice/common/monitor`,
 * `monitor_connection_server.go`).
 *
 * - `update(conn)` stores a copy and broadcasts UPDATE; `delete(conn)` forgets it and broadcasts DELETE.
 * - `monitorConnections(selector)` (the gRPC implementation) first yields one INITIAL_STATE_TRANSFER with
 *   every stored connection matching the selector (possibly empty), then one UPDATE/DELETE event per
 *   matching change, until the call signal aborts or `stop()` is called.
 * - Each subscriber has a bounded buffer that coalesces per connection id (the latest event of a
 *   connection replaces an undelivered older one, so a slow reader sees the final state); beyond
 *   `bufferSize` distinct connections the oldest pending event is dropped (counted in `dropped`).
 *   A cancelled subscription leaves no listener behind.
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
import { InvalidArgumentError } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/log.js';

export const DEFAULT_SUBSCRIBER_BUFFER = 1024;

export interface MonitorServiceOptions {
  /** Max distinct pending connections per subscriber. Default DEFAULT_SUBSCRIBER_BUFFER. */
  readonly bufferSize?: number;
  readonly log?: Logger;
}

type Pending = { type: ConnectionEventType; conn: Connection };

class Subscriber {
  readonly pending = new Map<string, Pending>();
  dropped = 0;
  #wake?: () => void;

  constructor(
    readonly selector: MonitorScopeSelector,
    readonly max: number,
  ) {}

  push(type: ConnectionEventType, conn: Connection): boolean {
    if (!matchesSelector(conn, this.selector)) return false;
    this.pending.delete(conn.id);
    this.pending.set(conn.id, { type, conn });
    let overflow = false;
    while (this.pending.size > this.max) {
      this.pending.delete(this.pending.keys().next().value!);
      this.dropped++;
      overflow = true;
    }
    this.#wake?.();
    return overflow;
  }

  shift(): Pending | undefined {
    const first = this.pending.entries().next();
    if (first.done) return undefined;
    this.pending.delete(first.value[0]);
    return first.value[1];
  }

  /** Wakes a pending `wait` (used when the service stops). */
  interrupt(): void {
    this.#wake?.();
  }

  /** Resolves on the next push or when a signal aborts; removes its listeners either way. */
  wait(signals: AbortSignal[]): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#wake = undefined;
        for (const s of signals) s.removeEventListener('abort', done);
        resolve();
      };
      if (signals.some((s) => s.aborted) || this.pending.size > 0) return resolve();
      this.#wake = done;
      for (const s of signals) s.addEventListener('abort', done, { once: true });
    });
  }
}

export class MonitorService implements MonitorConnectionServiceImplementation {
  readonly #connections = new Map<string, Connection>();
  readonly #subscribers = new Set<Subscriber>();
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
    this.#connections.set(c.id, c);
    this.#broadcast(ConnectionEventType.UPDATE, c);
  }

  delete(conn: Connection): void {
    const c = cloneConnection(this.#connections.get(conn.id) ?? conn);
    this.#connections.delete(conn.id);
    this.#broadcast(ConnectionEventType.DELETE, c);
  }

  /** Ends every subscription (server stop): wakes each waiting subscriber, which then sees the stop. */
  stop(): void {
    this.#stop.abort(ENDED);
    for (const s of this.#subscribers) s.interrupt();
  }

  #broadcast(type: ConnectionEventType, conn: Connection): void {
    for (const s of this.#subscribers) {
      if (s.push(type, conn)) this.#log.warn({ dropped: s.dropped }, 'slow monitor subscriber: dropped the oldest pending event');
    }
  }

  async *monitorConnections(selector: MonitorScopeSelector, call: { signal: AbortSignal }): AsyncGenerator<ConnectionEvent> {
    const sub = new Subscriber(selector, this.#bufferSize);
    this.#subscribers.add(sub);
    try {
      const initial: Record<string, Connection> = {};
      for (const c of this.#connections.values()) if (matchesSelector(c, selector)) initial[c.id] = cloneConnection(c);
      yield { type: ConnectionEventType.INITIAL_STATE_TRANSFER, connections: initial };
      // only the call's own signal is listened to; stop() wakes subscribers itself, so the service-wide
      // stop signal does not collect one listener per open stream
      const signals = [call.signal];
      while (!call.signal.aborted && !this.#stop.signal.aborted) {
        const next = sub.shift();
        if (next) {
          yield { type: next.type, connections: { [next.conn.id]: cloneConnection(next.conn) } };
          continue;
        }
        await sub.wait(signals);
      }
    } finally {
      this.#subscribers.delete(sub);
    }
  }
}
