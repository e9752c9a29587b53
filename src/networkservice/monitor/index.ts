/**
 * `monitor` server (upstream `sdk:pkg/networkservice/common/monitor`): keeps this hop's `MonitorService`
 * current and propagates downstream state upwards.
 *
 * - Successful Request: stores the connection (state UP) and broadcasts UPDATE. Failed re-Request of a
 *   known connection: broadcasts UPDATE with state DOWN. Close: broadcasts DELETE (also when the
 *   downstream Close fails).
 * - Passthrough: when the connection has a downstream (`CONNECTED_URL`, set by `connect`), it opens
 *   `MonitorConnections` to that URL (dep `monitorClient(url)`) with selector
 *   `[{id: own segment id, name: own segment name}]` and re-emits what it gets after the client-side filter
 *   of spec §1.4: only connections whose segment at this hop's index has this hop's id and whose
 *   `path.index` is this hop's index or the next; downstream path (index rewritten to this hop's),
 *   context and state are taken, DELETE becomes DOWN, unchanged connections are suppressed. If the stream
 *   fails or ends, the connection is broadcast with state DOWN.
 * Placement: server chain after `begin` (uses `ctx.state` and `ctx.events.lifetime`), before `connect`.
 * Background work: one passthrough loop per connection with a downstream, owned by an AbortController
 * linked to the connection lifetime; restarted by a Request when the downstream URL changed or the previous
 * loop ended; stopped on Close.
 */
import {
  Connection as ConnectionFns,
  ConnectionEventType,
  State,
  type Connection,
  type MonitorConnectionClient,
} from '../../api/gen/connection.js';
import { cloneConnection } from '../../api/helpers.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { errorMessage, UnavailableError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { linkSignals, ENDED } from '../../core/signals.js';
import { StateKey } from '../../core/state.js';
import { CONNECTED_URL } from '../connect/state.js';
import { MonitorService } from './service.js';

export { MonitorService, DEFAULT_SUBSCRIBER_BUFFER, type MonitorServiceOptions } from './service.js';

export interface MonitorDeps {
  /** This hop's store; also served as `connection.MonitorConnection`. */
  readonly monitor: MonitorService;
  /** Opens a MonitorConnection client to a next hop (passthrough). Without it there is no passthrough. */
  readonly monitorClient?: (url: string) => MonitorConnectionClient;
}

interface Passthrough {
  readonly url: string;
  readonly controller: AbortController;
  done: boolean;
}

const PASSTHROUGH = new StateKey<Passthrough>('monitor.passthrough');

export function monitorServer(deps: MonitorDeps): NetworkServiceElement {
  const { monitor } = deps;

  const startPassthrough = (conn: Connection, url: string, lifetime: AbortSignal | undefined, log: Logger): Passthrough => {
    const pt: Passthrough = { url, controller: new AbortController(), done: false };
    const linked = linkSignals([lifetime, pt.controller.signal]);
    void runPassthrough(conn, pt, linked.signal, log.child({ downstream: url })).finally(() => {
      pt.done = true;
      linked.dispose();
    });
    return pt;
  };

  const runPassthrough = async (own: Connection, pt: Passthrough, signal: AbortSignal, log: Logger) => {
    const index = own.path!.index;
    const seg = own.path!.pathSegments[index];
    let failure: unknown;
    try {
      const stream = deps.monitorClient!(pt.url).monitorConnections({ pathSegments: [{ id: seg.id, name: seg.name }], networkServices: [] }, { signal });
      for await (const event of stream) {
        for (const down of Object.values(event.connections)) {
          const p = down.path;
          if (!p || p.pathSegments[index]?.id !== seg.id || (p.index !== index && p.index !== index + 1)) continue;
          const current = monitor.get(own.id);
          if (!current) continue;
          const updated = cloneConnection(current);
          updated.path = { index, pathSegments: p.pathSegments.map((s) => ({ ...s, metrics: { ...s.metrics } })) };
          updated.context = down.context;
          updated.state = event.type === ConnectionEventType.DELETE ? State.DOWN : down.state;
          if (sameConnection(updated, current)) continue;
          log.debug({ state: updated.state, event: event.type }, 'downstream change');
          monitor.update(updated);
        }
      }
      failure = new UnavailableError(`monitor stream from ${pt.url} ended`);
    } catch (err) {
      failure = err;
    }
    if (signal.aborted) return;
    log.warn({ err: errorMessage(failure) }, 'downstream monitor stream failed: connection DOWN');
    const current = monitor.get(own.id);
    if (current && current.state !== State.DOWN) monitor.update({ ...current, state: State.DOWN });
  };

  const stop = (pt: Passthrough | undefined) => {
    if (pt && !pt.controller.signal.aborted) pt.controller.abort(ENDED);
  };

  return {
    name: 'monitor-server',
    requires: ['state', 'events'],
    async request(req, ctx, next) {
      const known = req.connection ? monitor.get(req.connection.id) : undefined;
      let conn: Connection;
      try {
        conn = await next.request(req, ctx);
      } catch (err) {
        if (known) monitor.update({ ...known, state: State.DOWN });
        throw err;
      }
      monitor.update({ ...conn, state: State.UP });
      const url = ctx.state.get(CONNECTED_URL);
      const pt = ctx.state.get(PASSTHROUGH);
      if (url === undefined || !deps.monitorClient) {
        stop(pt);
        ctx.state.delete(PASSTHROUGH);
      } else if (!pt || pt.url !== url || pt.done || pt.controller.signal.aborted) {
        stop(pt);
        ctx.state.set(PASSTHROUGH, startPassthrough(cloneConnection(conn), url, ctx.events?.lifetime, ctx.log));
      }
      return conn;
    },
    async close(conn, ctx, next) {
      stop(ctx.state.delete(PASSTHROUGH));
      try {
        await next.close(conn, ctx);
      } finally {
        monitor.delete(conn);
      }
    },
  };
}

function sameConnection(a: Connection, b: Connection): boolean {
  return Buffer.compare(Buffer.from(ConnectionFns.encode(a).finish()), Buffer.from(ConnectionFns.encode(b).finish())) === 0;
}
