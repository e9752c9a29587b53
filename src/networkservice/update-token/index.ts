/**
 * `update-token` server (upstream `sdk:pkg/networkservice/common/updatetoken`). On Request and Close:
 * (a) the previous segment's `token`/`expires` are overwritten from the incoming metadata
 * `nsm-client-token` / `nsm-client-token-expires` (RFC3339Nano) when present — the per-RPC token the
 * previous hop sent on this call; (b) this hop's own segment gets a fresh token from the TokenGenerator,
 * for the caller: over mTLS `aud` is the caller's SPIFFE ID and `exp` at most its certificate's NotAfter
 * and signed with the SVID this hop presented to the caller on that connection, the certificate the caller
 * verifies it with (`tokenRequestForPeer(ctx.peerIdentity)`); a plaintext call has no caller certificate, so the
 * token names no audience (the insecure mesh's HS256 tokens, as before).
 * Placement: server chain after `begin` (before authorize/timeout, which read the tokens). A malformed
 * expiry (or a token without one) is an InvalidArgumentError naming the metadata key (`readClientToken`).
 * No background work.
 */
import type { Connection } from '../../api/gen/connection.js';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import { currentSegment, prevSegment } from '../../api/helpers.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import type { CallContext } from '../../core/context.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { readClientToken, type TokenGenerator } from '../../core/token.js';
import { tokenRequestForPeer } from '../../security/token.js';

export interface UpdateTokenDeps {
  readonly tokens: TokenGenerator;
}

export function updateTokenServer(deps: UpdateTokenDeps): NetworkServiceElement {
  const update = async (input: Connection, ctx: CallContext): Promise<Connection> => {
    const conn = ConnectionFns.fromPartial(input);
    const prev = prevSegment(conn);
    const incoming = readClientToken(ctx.metadata);
    if (prev && incoming) {
      prev.token = incoming.token;
      prev.expires = incoming.expires;
    }
    const own = currentSegment(conn);
    if (!own) throw new InvalidArgumentError('connection.path', conn.path, 'no segment at path.index (update-path comes first)');
    const issued = await deps.tokens.generate(ctx.peerIdentity ? tokenRequestForPeer(ctx.peerIdentity) : undefined);
    own.token = issued.token;
    own.expires = issued.expires;
    return conn;
  };
  return {
    name: 'update-token-server',
    requires: ['update-path'],
    async request(req, ctx, next) {
      return next.request({ ...req, connection: await update(req.connection ?? ConnectionFns.fromPartial({}), ctx) }, ctx);
    },
    async close(conn, ctx, next) {
      return next.close(await update(conn, ctx), ctx);
    },
  };
}
