/**
 * `authorize` (upstream `sdk:pkg/networkservice/common/authorize`): upstream's path policies on a
 * NetworkService hop (security/policies.ts).
 *
 * - Server: on Request, common + `prev_token_signed` on the left side of the path (segments 0..index),
 *   the previous token verified with the caller's certificate (`ctx.peerIdentity`). On Close the same
 *   with `forClose`: an expired token is allowed and logged (a Close always cleans up), a forged or
 *   unchained one is refused. A refusal is a PolicyDeniedError (PERMISSION_DENIED at the edge) naming the
 *   policy and the segment, logged once here; nothing after this element runs.
 *   Placement: endpoint chain after `update-token` (which puts the caller's `nsm-client-token` into the
 *   previous segment) and before everything that does work (timeout, monitor, IPAM, xconnect, connect).
 * - Client: on Request, common + `next_token_signed` on the whole returned path, the next hop's token
 *   verified with the certificate the server presented in the TLS handshake of the channel the call went
 *   on (`pool.serverIdentity(CONNECTED_URL)`). A refused answer is Closed again (the server set the
 *   connection up) and the refusal thrown. Close passes through. Placement: client chain right before
 *   `client-url`/`connect`, as upstream's `chains/client` puts it before `connect`.
 *
 * Both are pass-through when the hop is insecure (`NSM_INSECURE=true`: plaintext, HS256 tokens nobody can
 * verify) — decided by the `insecure` option the component passes, never guessed from the call.
 * No background work.
 */
import type { Connection } from '../../api/gen/connection.js';
import { passThrough, type NetworkServiceElement } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import { errorMessage } from '../../core/errors.js';
import type { ChannelPool } from '../../core/transport.js';
import * as policies from '../../security/policies.js';
import type { PathPolicyInput } from '../../security/policies.js';
import { CONNECTED_URL } from '../connect/state.js';

export interface AuthorizeOptions {
  /** True on a plaintext hop (`NSM_INSECURE=true`): the element passes through. Required: the component decides. */
  readonly insecure: boolean;
}

/** What the policies read of a connection's path. */
export function pathInput(conn: Connection | undefined, peer: PathPolicyInput['peer'], now: number): PathPolicyInput {
  const path = conn?.path;
  return {
    segments: (path?.pathSegments ?? []).map((s) => ({ token: s.token, name: s.name })),
    index: path?.index ?? 0,
    peer,
    now,
  };
}

export function authorizeServer(deps: { clock?: Clock }, options: AuthorizeOptions): NetworkServiceElement {
  if (options.insecure) return passThrough('authorize-server', { provides: ['authorize'] });
  const clock = deps.clock ?? realClock;
  const check = (conn: Connection | undefined, ctx: CallContext, forClose: boolean) =>
    policies.enforce(policies.authorizeServer(pathInput(conn, ctx.peerIdentity?.certificate, clock.now()), { forClose }), ctx.log);
  return {
    name: 'authorize-server',
    provides: ['authorize'],
    requires: ['update-token-server'],
    request(req, ctx, next) {
      check(req.connection, ctx, false);
      return next.request(req, ctx);
    },
    close(conn, ctx, next) {
      check(conn, ctx, true);
      return next.close(conn, ctx);
    },
  };
}

export function authorizeClient(deps: { pool: ChannelPool; clock?: Clock }, options: AuthorizeOptions): NetworkServiceElement {
  if (options.insecure) return passThrough('authorize-client');
  const clock = deps.clock ?? realClock;
  return {
    name: 'authorize-client',
    async request(req, ctx, next) {
      const conn = await next.request(req, ctx);
      const url = ctx.state.get(CONNECTED_URL);
      const server = url === undefined ? undefined : deps.pool.serverIdentity(url);
      const verdict = policies.authorizeClient(pathInput(conn, server?.certificate, clock.now()));
      if (verdict.refusal) {
        try {
          await next.close(conn, ctx);
        } catch (err) {
          ctx.log.warn({ err: errorMessage(err) }, 'closing the refused connection failed');
        }
      }
      policies.enforce(verdict, ctx.log);
      return conn;
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}
