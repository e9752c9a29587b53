/**
 * `monitor` server (upstream `sdk:pkg/networkservice/common/monitor`): keeps this hop's `MonitorService`
 * current and propagates downstream state upwards.
 *
 * - Successful Request: stores the connection (state UP) and broadcasts UPDATE. Failed re-Request of a
 *   known connection: broadcasts UPDATE with state DOWN. Close: broadcasts DELETE (also when the
 *   downstream Close fails).
 * - Passthrough: when the connection has a downstream (`CONNECTED_URL`, set by `connect`), it watches
 *   that URL (dep `monitorClient(url)`) on one `MonitorConnections` stream shared by all connections to
 *   it (shared.ts; selector `[{id: "", name: own segment name}]`, events handed over by segment id — one
 *   stream per connection cost 55 MiB per 1000 connections at each end) and re-emits after the client-side filter
 *   of spec §1.4: only connections whose segment at this hop's index has this hop's id and whose
 *   `path.index` is this hop's index or the next; downstream path (index rewritten to this hop's),
 *   context and state are taken, DELETE becomes DOWN, unchanged connections are suppressed. If the stream
 *   fails or ends, the connection is broadcast with state DOWN.
 * Placement: server chain after `begin` (uses `ctx.state` and `ctx.events.lifetime`), before `connect`.
 * Background work: one stream per downstream URL while a connection watches it; a connection's
 * subscription ends with its lifetime or Close, is renewed by a Request when the downstream URL changed or
 * the shared stream ended.
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
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { StateKey } from '../../core/state.js';
import { CONNECTED_URL } from '../connect/state.js';
import { MonitorService } from './service.js';
import { SharedMonitors, type MonitorSubscription } from './shared.js';

export { MonitorService, DEFAULT_SUBSCRIBER_BUFFER, type MonitorServiceOptions } from './service.js';

export interface MonitorDeps {
  /** This hop's store; also served as `connection.MonitorConnection`. */
  readonly monitor: MonitorService;
  /** Opens a MonitorConnection client to a next hop (passthrough). Without it there is no passthrough. */
  readonly monitorClient?: (url: string) => MonitorConnectionClient;
}

interface Passthrough {
  readonly url: string;
  readonly subscription: MonitorSubscription;
}

const PASSTHROUGH = new StateKey<Passthrough>('monitor.passthrough');

export function monitorServer(deps: MonitorDeps): NetworkServiceElement {
  const { monitor } = deps;
  const shared = new SharedMonitors();

  /** Watches `own` (as this hop returned it) on the shared stream of `url`, until its lifetime ends. */
  const startPassthrough = (own: Connection, url: string, lifetime: AbortSignal | undefined, log: Logger): Passthrough => {
    const index = own.path!.index;
    const seg = own.path!.pathSegments[index];
    const open = (signal: AbortSignal) =>
      deps.monitorClient!(url).monitorConnections({ pathSegments: [{ id: '', name: seg.name }], networkServices: [] }, { signal });
    const onLifetimeEnd = () => subscription.close();
    const subscription = shared.get(`${url}\n${seg.name}`, open, log.child({ downstream: url })).subscribe(seg.id, {
      event(type, down) {
        const p = down.path;
        if (!p || p.pathSegments[index]?.id !== seg.id || (p.index !== index && p.index !== index + 1)) return;
        const current = monitor.get(own.id);
        if (!current) return;
        const updated = cloneConnection(current);
        updated.path = { index, pathSegments: p.pathSegments.map((s) => ({ ...s, metrics: { ...s.metrics } })) };
        updated.context = down.context;
        updated.state = type === ConnectionEventType.DELETE ? State.DOWN : down.state;
        if (sameConnection(updated, current)) return;
        log.debug({ state: updated.state, event: type }, 'downstream change');
        monitor.update(updated);
      },
      end(err) {
        lifetime?.removeEventListener('abort', onLifetimeEnd);
        log.debug({ err: errorMessage(err), downstream: url }, 'downstream monitor stream failed: connection DOWN');
        const current = monitor.get(own.id);
        if (current && current.state !== State.DOWN) monitor.update({ ...current, state: State.DOWN });
      },
    });
    if (lifetime?.aborted) subscription.close();
    else lifetime?.addEventListener('abort', onLifetimeEnd, { once: true });
    return { url, subscription };
  };

  const stop = (pt: Passthrough | undefined) => pt?.subscription.close();

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
      } else if (!pt || pt.url !== url || pt.subscription.done) {
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
