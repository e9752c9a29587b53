/**
 * Control-plane watch of a client connection: a MonitorConnections stream to the client's nsmgr with
 * the selector {id, name} of the client's own path segment. Yields when the connection is reported DOWN
 * or deleted, or when the stream breaks (a normal cancel is not a fault).
 */
import { ConnectionEventType, State, type Connection, type MonitorConnectionClient } from '../../api/gen/connection.js';
import { errorMessage } from '../../core/errors.js';
import type { ControlPlaneWatch } from './types.js';

export function monitorControlPlane(client: () => MonitorConnectionClient): ControlPlaneWatch {
  return {
    async *watch(conn: Connection, signal: AbortSignal) {
      const seg = conn.path?.pathSegments[0];
      const selector = { pathSegments: [{ id: seg?.id ?? conn.id, name: seg?.name ?? '', token: '', expires: undefined, metrics: {} }], networkServices: [] };
      try {
        for await (const ev of client().monitorConnections(selector, { signal })) {
          for (const c of Object.values(ev.connections)) {
            if (c.path?.pathSegments[0]?.id !== conn.id) continue;
            if (ev.type === ConnectionEventType.DELETE) {
              yield { reason: 'connection deleted by the nsmgr' };
              return;
            }
            if (c.state === State.DOWN) {
              yield { reason: 'nsmgr reports the connection DOWN' };
              return;
            }
          }
        }
        if (!signal.aborted) yield { reason: 'monitor stream to nsmgr ended' };
      } catch (err) {
        if (signal.aborted) return;
        yield { reason: `monitor stream to nsmgr broke: ${errorMessage(err)}` };
      }
    },
  };
}
