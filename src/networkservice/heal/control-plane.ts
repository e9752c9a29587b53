/**
 * Control-plane watch of a client's connections: one MonitorConnections stream to the client's nsmgr for
 * all of them (selector: the client's name, the `name` of path segment 0; monitor/shared.ts), each
 * connection hearing the events of its own path. A watch yields when its connection is reported DOWN or
 * deleted, or when the stream breaks (a normal cancel is not a fault).
 *
 * An event counts for a connection when segment 0 has the connection's id and, once known, segment 1 the
 * id nsmgr gave it: another client of the same name (ids `<name>-<i>` alike) is not this one.
 */
import { ConnectionEventType, State, type Connection, type MonitorConnectionClient } from '../../api/gen/connection.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { SharedMonitors } from '../monitor/shared.js';
import type { ControlPlaneWatch } from './types.js';

export function monitorControlPlane(client: () => MonitorConnectionClient, deps: { log: Logger }): ControlPlaneWatch {
  const shared = new SharedMonitors();
  const log = deps.log.child({ element: 'heal', watch: 'control-plane' });
  return {
    async *watch(conn: Connection, signal: AbortSignal) {
      if (signal.aborted) return;
      const segs = conn.path?.pathSegments ?? [];
      const id = segs[0]?.id ?? conn.id;
      const name = segs[0]?.name ?? '';
      const nsmgrSegmentId = segs[1]?.id;
      const open = (s: AbortSignal) => client().monitorConnections({ pathSegments: [{ id: '', name }], networkServices: [] }, { signal: s });
      let found: (fault: { reason: string } | undefined) => void = () => undefined;
      const fault = new Promise<{ reason: string } | undefined>((resolve) => (found = resolve));
      const sub = shared.get(name, open, log).subscribe(id, {
        event(type, c) {
          const p = c.path?.pathSegments ?? [];
          if (p[0]?.id !== id || (nsmgrSegmentId && p[1] && p[1].id !== nsmgrSegmentId)) return;
          if (type === ConnectionEventType.DELETE) found({ reason: 'connection deleted by the nsmgr' });
          else if (c.state === State.DOWN) found({ reason: 'nsmgr reports the connection DOWN' });
        },
        end(err) {
          found({ reason: `monitor stream to nsmgr broke: ${errorMessage(err)}` });
        },
      });
      const onAbort = () => found(undefined);
      signal.addEventListener('abort', onAbort, { once: true });
      const f = await fault;
      signal.removeEventListener('abort', onAbort);
      sub.close();
      if (f && !signal.aborted) yield f;
    },
  };
}
