/**
 * A MonitorConnections stream recorded for a test: every event is kept in `events`, and `waitFor`
 * resolves with the first event (past or future) matching a predicate. Background work: one stream
 * reader, ended by `stop()` (or when the server goes away).
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

/** Starts recording the stream of the server on `channel`; `name` is used in timeout errors. */
export function recordMonitor(channel: Channel, name: string, selector: Partial<MonitorScopeSelector>, onStop: () => void): MonitorRecorder {
  const events: ConnectionEvent[] = [];
  const waiters = new Set<() => void>();
  const ac = new AbortController();
  const client = createClient(MonitorConnectionDefinition, channel);
  void (async () => {
    try {
      for await (const ev of client.monitorConnections({ pathSegments: [], networkServices: [], ...selector }, { signal: ac.signal })) {
        events.push(ev);
        for (const w of waiters) w();
      }
    } catch {
      /* stopped, or the server went away */
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
