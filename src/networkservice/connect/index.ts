/**
 * `connect` server (upstream `sdk:pkg/networkservice/common/connect` + `clienturl`/`clientconn`/`dial`):
 * the element of a server chain that forwards the Request to the next hop.
 *
 * - Request: takes the next hop's URL from `CLIENT_URL` (set earlier by discover / discover-forwarder; falls
 *   back to the URL already in use), dials it through the `ChannelPool` (`dialTimeout`), and runs the
 *   configured **client chain** (e.g. `[updatePathClient, beginClient, trimPath…]`; `begin` client passes
 *   through here since the server `begin` already serializes) whose tail makes the real gRPC call with
 *   metadata `nsm-client-token` / `nsm-client-token-expires` from the TokenGenerator, minted after the
 *   dial for the server the channel's mTLS handshake found (`aud` its SPIFFE ID, `exp` at most its
 *   certificate's NotAfter; no audience on a plaintext channel). gRPC errors are mapped
 *   with `fromClientError`. On success it records `CONNECTED_URL` (read by monitor passthrough, trim-path
 *   and Close) and continues the server chain with the returned connection; if the rest of the server
 *   chain fails, the remote connection is Closed again (errors ignored). A first Request whose caller
 *   went away before the next hop answered is Closed there too (the next hop may have set it up; it finds
 *   it by this hop's path segment, see `begin`). These Closes run on their own deadline.
 * - Close: Closes on the remembered `CONNECTED_URL` (else `CLIENT_URL`) through the client chain, on its
 *   own deadline (`DEFAULT_CLEANUP_TIMEOUT_MS`, not the caller's signal: the next hop releases what it
 *   holds also when the caller went away), logs and swallows a remote failure, forgets the URL and always
 *   calls `next.close`.
 * The client chain shares this connection's `ctx.state` (client elements must use their own keys).
 * Placement: near the end of nsmgr / forwarder server chains, after `begin` (state) and discover.
 * Background work: none (channels belong to the pool).
 */
import type { Connection } from '../../api/gen/connection.js';
import { NetworkServiceDefinition, type NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { cloneConnection, cloneRequest } from '../../api/helpers.js';
import { checkOrder, networkServiceChain, type NetworkServiceElement, type NetworkServiceHandler } from '../../core/chain.js';
import { withContext, type CallContext } from '../../core/context.js';
import { errorMessage, fromClientError, InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import { linkSignals } from '../../core/signals.js';
import type { TokenGenerator } from '../../core/token.js';
import { createClient, type ChannelPool } from '../../core/transport.js';
import { serverTokenRequest, tokenMetadata } from './metadata.js';
import { CLIENT_URL } from '../client-url/index.js';
import { CONNECTED_URL } from './state.js';

export { CONNECTED_URL } from './state.js';
export { monitorClientFactory } from './monitor-client.js';
export { serverTokenRequest, tokenMetadata } from './metadata.js';

/** Upstream sdk default dial timeout (cmd-nsmgr and the forwarder use 750 ms via NSM_DIAL_TIMEOUT). */
export const DEFAULT_DIAL_TIMEOUT_MS = 15_000;
/** Bound (ms) of a remote Close: on Close, and when the rest of the server chain fails after a remote success. */
export const DEFAULT_CLEANUP_TIMEOUT_MS = 15_000;

export interface ConnectDeps {
  readonly pool: ChannelPool;
  readonly tokens: TokenGenerator;
}

export interface ConnectOptions {
  /** ms to wait for the next hop's channel. Default DEFAULT_DIAL_TIMEOUT_MS. */
  readonly dialTimeout?: number;
  /** Client elements run before the gRPC call, in order. Default: none. */
  readonly clientChain?: readonly NetworkServiceElement[];
  /** Capabilities the client chain may rely on from the server chain (checked at build time). */
  readonly given?: readonly string[];
}

export function connectServer(deps: ConnectDeps, options: ConnectOptions = {}): NetworkServiceElement {
  const config = Object.freeze({
    dialTimeout: options.dialTimeout ?? DEFAULT_DIAL_TIMEOUT_MS,
    clientChain: Object.freeze([...(options.clientChain ?? [])]),
  });
  if (!Number.isFinite(config.dialTimeout) || config.dialTimeout <= 0) {
    throw new InvalidArgumentError('connect dialTimeout', config.dialTimeout, 'must be a positive number of milliseconds');
  }
  const given = options.given ?? ['begin', 'state', 'events'];
  checkOrder('connect client chain', config.clientChain, given);

  const grpcTail = (url: string): NetworkServiceHandler => {
    const client = async (ctx: CallContext) => createClient(NetworkServiceDefinition, await deps.pool.dial(url, config.dialTimeout, ctx.signal));
    return {
      async request(req: NetworkServiceRequest, ctx: CallContext): Promise<Connection> {
        const c = await client(ctx);
        try {
          return await c.request(req, { signal: ctx.signal, metadata: await tokenMetadata(deps.tokens, serverTokenRequest(deps.pool, url)) });
        } catch (err) {
          throw fromClientError(err, `Request to ${url}`);
        }
      },
      async close(conn: Connection, ctx: CallContext): Promise<void> {
        const c = await client(ctx);
        try {
          await c.close(conn, { signal: ctx.signal, metadata: await tokenMetadata(deps.tokens, serverTokenRequest(deps.pool, url)) });
        } catch (err) {
          throw fromClientError(err, `Close on ${url}`);
        }
      },
    };
  };
  const clientFor = (url: string) => networkServiceChain('connect client chain', config.clientChain, { tail: grpcTail(url), given });

  const closeRemote = async (url: string, conn: Connection, ctx: CallContext) => {
    try {
      await clientFor(url).close(cloneConnection(conn), ctx);
    } catch (err) {
      ctx.log.warn({ url, err: errorMessage(err) }, 'remote Close failed; closing locally anyway');
    }
  };

  /** A remote Close on its own deadline, whatever the caller's signal. */
  const cleanupClose = async (url: string, conn: Connection, ctx: CallContext) => {
    const cleanup = linkSignals([], DEFAULT_CLEANUP_TIMEOUT_MS);
    try {
      await closeRemote(url, conn, withContext(ctx, { signal: cleanup.signal }));
    } finally {
      cleanup.dispose();
    }
  };

  return {
    name: 'connect-server',
    requires: ['state'],
    async request(req, ctx, next) {
      const url = ctx.state.get(CLIENT_URL) ?? ctx.state.get(CONNECTED_URL);
      if (!url) throw new NotFoundError('connect: no next hop URL for this connection (discover sets CLIENT_URL)');
      const first = ctx.state.get(CONNECTED_URL) === undefined;
      let remote: Connection;
      try {
        remote = await clientFor(url).request(cloneRequest(req), ctx);
      } catch (err) {
        // The caller went away while the next hop answered a first Request: the next hop may have set the
        // connection up all the same. It finds it by this hop's segment, so a Close gives back what it took.
        if (first && ctx.signal.aborted && req.connection) await cleanupClose(url, req.connection, ctx);
        throw err;
      }
      ctx.state.set(CONNECTED_URL, url);
      try {
        return await next.request({ ...req, connection: remote }, ctx);
      } catch (err) {
        await cleanupClose(url, remote, ctx);
        ctx.state.delete(CONNECTED_URL);
        throw err;
      }
    },
    async close(conn, ctx, next) {
      const url = ctx.state.get(CONNECTED_URL) ?? ctx.state.get(CLIENT_URL);
      // The next hop releases what it holds for the connection also when our caller went away.
      if (url) await cleanupClose(url, conn, ctx);
      ctx.state.delete(CONNECTED_URL);
      return next.close(conn, ctx);
    },
  };
}
