/**
 * `checkRequest` / `checkResponse` / `checkClose`: pass-through test elements that hand the in-flight
 * object and the call context to a callback (upstream `sdk:pkg/networkservice/utils/checks`). A callback
 * may assert (a thrown assertion fails the call with that error) or mutate the object.
 */
import type { Connection } from '../api/gen/connection.js';
import type { NetworkServiceRequest } from '../api/gen/networkservice.js';
import type { NetworkServiceElement } from '../core/chain.js';
import type { CallContext } from '../core/context.js';

/** Calls `fn` with the request on its way down. */
export function checkRequest(fn: (req: NetworkServiceRequest, ctx: CallContext) => void | Promise<void>, name = 'check-request'): NetworkServiceElement {
  return {
    name,
    async request(req, ctx, next) {
      await fn(req, ctx);
      return next.request(req, ctx);
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}

/** Calls `fn` with the connection returned by the rest of the chain. */
export function checkResponse(fn: (conn: Connection, ctx: CallContext) => void | Promise<void>, name = 'check-response'): NetworkServiceElement {
  return {
    name,
    async request(req, ctx, next) {
      const conn = await next.request(req, ctx);
      await fn(conn, ctx);
      return conn;
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}

/** Calls `fn` with the connection being closed, on its way down. */
export function checkClose(fn: (conn: Connection, ctx: CallContext) => void | Promise<void>, name = 'check-close'): NetworkServiceElement {
  return {
    name,
    request: (req, ctx, next) => next.request(req, ctx),
    async close(conn, ctx, next) {
      await fn(conn, ctx);
      return next.close(conn, ctx);
    },
  };
}
