/**
 * `trim-path` server (upstream `sdk:pkg/networkservice/common/trimpath`): on the way back, truncates
 * `path.pathSegments` to `[0 .. index]` unless the connection has a downstream (`CONNECTED_URL` set by
 * `connect`), so an endpoint drops stale trailing segments left over from before a reselect.
 * Placement: server chain after `begin` (reads per-connection state), before `connect`. No background work.
 */
import type { NetworkServiceElement } from '../../core/chain.js';
import { CONNECTED_URL } from '../connect/state.js';

export function trimPathServer(): NetworkServiceElement {
  return {
    name: 'trim-path-server',
    requires: ['state'],
    async request(req, ctx, next) {
      const conn = await next.request(req, ctx);
      if (ctx.state.get(CONNECTED_URL) === undefined && conn.path) {
        conn.path.pathSegments = conn.path.pathSegments.slice(0, conn.path.index + 1);
      }
      return conn;
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}
