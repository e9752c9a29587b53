/**
 * One MonitorConnections stream per peer, shared by every connection of this process that watches it.
 *
 * Watching each connection on a stream of its own (as upstream's monitor element and client do) costs a
 * gRPC stream at both ends per connection and per hop: at 1000 connections nsmgr held 2000 streams and
 * the forwarder 2000 more, about 55 MiB of each one's RSS, and every Request opened one more (issue 11).
 * Here a peer is watched once, with a selector by this hop's name only (`""` id: a wildcard), and events
 * are handed to the subscriptions by the path segment ids of the connections they carry.
 *
 * - The stream opens with the first subscription and is cancelled when the last one closes (the owner
 *   forgets an idle `SharedMonitor` through `onIdle`).
 * - A subscription gets every event about a connection one of whose path segments has its id, from the
 *   moment it subscribed (no initial state of its own: the owner knows the state it subscribed with).
 * - When the stream fails or ends, every subscription of that moment ends with the error (`end`), once;
 *   a later `subscribe` opens a new stream. A closed subscription hears nothing more.
 * Background work: one loop per open stream.
 */
import { ConnectionEventType, type Connection, type ConnectionEvent } from '../../api/gen/connection.js';
import { errorMessage, UnavailableError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { ENDED } from '../../core/signals.js';

export interface SubscriptionHandlers {
  /** An event about a connection whose path has a segment with the subscribed id. */
  event(type: ConnectionEventType, conn: Connection): void;
  /** The shared stream failed or ended (never called after `close()`). */
  end(err: unknown): void;
}

export interface MonitorSubscription {
  /** True once the stream ended for it or it was closed. */
  readonly done: boolean;
  close(): void;
}

export interface SharedMonitorDeps {
  /** Opens the stream (the selector is the caller's business); aborting `signal` cancels it. */
  readonly open: (signal: AbortSignal) => AsyncIterable<ConnectionEvent>;
  readonly log: Logger;
  /** Called when the last subscription closed and the stream was cancelled. */
  readonly onIdle?: () => void;
}

interface Sub {
  readonly handlers: SubscriptionHandlers;
  done: boolean;
}

export class SharedMonitor {
  readonly #deps: SharedMonitorDeps;
  readonly #subs = new Map<string, Set<Sub>>();
  #size = 0;
  #stream: AbortController | undefined;

  constructor(deps: SharedMonitorDeps) {
    this.#deps = deps;
  }

  /** Subscriptions now. */
  get size(): number {
    return this.#size;
  }

  subscribe(segmentId: string, handlers: SubscriptionHandlers): MonitorSubscription {
    const sub: Sub = { handlers, done: false };
    let set = this.#subs.get(segmentId);
    if (!set) this.#subs.set(segmentId, (set = new Set()));
    set.add(sub);
    this.#size++;
    if (!this.#stream) this.#start();
    return {
      get done() {
        return sub.done;
      },
      close: () => {
        if (sub.done) return;
        sub.done = true;
        this.#remove(segmentId, sub);
      },
    };
  }

  #remove(segmentId: string, sub: Sub): void {
    const set = this.#subs.get(segmentId);
    if (!set?.delete(sub)) return;
    this.#size--;
    if (set.size === 0) this.#subs.delete(segmentId);
    if (this.#size === 0 && this.#stream) {
      this.#stream.abort(ENDED);
      this.#stream = undefined;
      this.#deps.onIdle?.();
    }
  }

  #start(): void {
    const controller = new AbortController();
    this.#stream = controller;
    void this.#run(controller);
  }

  async #run(controller: AbortController): Promise<void> {
    let failure: unknown;
    try {
      for await (const ev of this.#deps.open(controller.signal)) this.#dispatch(ev);
      failure = new UnavailableError('monitor stream ended');
    } catch (err) {
      failure = err;
    }
    if (controller.signal.aborted || this.#stream !== controller) return;
    this.#stream = undefined;
    const ended = [...this.#subs.values()].flatMap((s) => [...s]);
    this.#subs.clear();
    this.#size = 0;
    this.#deps.log.warn({ err: errorMessage(failure), connections: ended.length }, 'shared monitor stream failed');
    for (const sub of ended) {
      sub.done = true;
      sub.handlers.end(failure);
    }
    this.#deps.onIdle?.();
  }

  #dispatch(ev: ConnectionEvent): void {
    for (const conn of Object.values(ev.connections)) {
      const seen = new Set<string>();
      for (const seg of conn.path?.pathSegments ?? []) {
        if (seen.has(seg.id)) continue;
        seen.add(seg.id);
        const set = this.#subs.get(seg.id);
        if (!set) continue;
        for (const sub of [...set]) {
          if (sub.done) continue;
          try {
            sub.handlers.event(ev.type, conn);
          } catch (err) {
            this.#deps.log.error({ err: errorMessage(err), connId: conn.id }, 'monitor subscription failed on an event');
          }
        }
      }
    }
  }
}

/** Shared monitors by key (peer URL and selector), each forgotten when idle. */
export class SharedMonitors {
  readonly #byKey = new Map<string, SharedMonitor>();

  /** The shared monitor for `key`, made with `open` if there is none. */
  get(key: string, open: (signal: AbortSignal) => AsyncIterable<ConnectionEvent>, log: Logger): SharedMonitor {
    let m = this.#byKey.get(key);
    if (!m) {
      const made: SharedMonitor = new SharedMonitor({ open, log, onIdle: () => this.#byKey.get(key) === made && this.#byKey.delete(key) });
      this.#byKey.set(key, made);
      m = made;
    }
    return m;
  }

  get size(): number {
    return this.#byKey.size;
  }
}
