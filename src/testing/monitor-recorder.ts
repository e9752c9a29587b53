/**
 * A MonitorConnections stream recorded for a test: every event is kept in `events`, and `waitFor`
 * resolves with the first event (past or future) matching a predicate. Background work: one stream
 * reader, opened again when its stream fails, ended by `stop()`.
 */
import { createClient, type Channel } from 'nice-grpc';
import { MonitorConnectionDefinition, type ConnectionEvent, type MonitorScopeSelector } from '../api/gen/connection.js';

/** Records a MonitorConnections stream; stopped by `stop()` or `sandbox.close()`. */
export interface MonitorRecorder {
  readonly events: ConnectionEvent[];
  /** Resolves with the first recorded event (past or future) matching `pred`; rejects after `timeoutMs`. */
  waitFor(pred: (e: ConnectionEvent) => boolean, timeoutMs?: number): Promise<ConnectionEvent>;
  stop(): void;
}

export const DEFAULT_MONITOR_WAIT_MS = 5000;
const RESUBSCRIBE_MS = 20;

/** Starts recording the stream of the server on `channel`; `name` is used in timeout errors. */
export function recordMonitor(channel: Channel, name: string, selector: Partial<MonitorScopeSelector>, onStop: () => void): MonitorRecorder {
  const events: ConnectionEvent[] = [];
  const waiters = new Set<() => void>();
  const ac = new AbortController();
  const client = createClient(MonitorConnectionDefinition, channel);
  // A stream that fails before it is stopped (the channel not connected yet on a busy machine, or the
  // server restarting) is opened again: each new stream starts with the server's current state.
  void (async () => {
    while (!ac.signal.aborted) {
      try {
        for await (const ev of client.monitorConnections({ pathSegments: [], networkServices: [], ...selector }, { signal: ac.signal })) {
          events.push(ev);
          for (const w of waiters) w();
        }
      } catch {
        /* stopped, or the server went away */
      }
      await new Promise((r) => setTimeout(r, RESUBSCRIBE_MS));
    }
  })();
  return {
    events,
    waitFor(pred, timeoutMs = DEFAULT_MONITOR_WAIT_MS) {
      const found = events.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const check = () => {
          const e = events.find(pred);
          if (!e) return;
          done();
          resolve(e);
        };
        const t = setTimeout(() => (done(), reject(new Error(`no matching monitor event from ${name} within ${timeoutMs} ms`))), timeoutMs);
        const done = () => (clearTimeout(t), waiters.delete(check));
        waiters.add(check);
      });
    },
    stop() {
      ac.abort();
      onStop();
    },
  };
}
