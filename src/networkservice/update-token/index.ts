/**
 * `update-token` server (upstream `sdk:pkg/networkservice/common/updatetoken`). On Request and Close:
 * (a) the previous segment's `token`/`expires` are overwritten from the incoming metadata
 * `nsm-client-token` / `nsm-client-token-expires` (RFC3339Nano) when present — the per-RPC token the
 * previous hop sent on this call; (b) this hop's own segment gets a fresh token from the TokenGenerator.
 * Placement: server chain after `begin` (before authorize/timeout, which read the tokens). A malformed
 * expiry is an InvalidArgumentError naming the metadata key. No background work.
 */
import { MD_CLIENT_TOKEN, MD_CLIENT_TOKEN_EXPIRES } from '../../api/constants.js';
import type { Connection } from '../../api/gen/connection.js';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import { currentSegment, prevSegment } from '../../api/helpers.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import type { CallContext } from '../../core/context.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { parseRfc3339Nano, type TokenGenerator } from '../../core/token.js';

export interface UpdateTokenDeps {
  readonly tokens: TokenGenerator;
}

export function updateTokenServer(deps: UpdateTokenDeps): NetworkServiceElement {
  const update = async (input: Connection, ctx: CallContext): Promise<Connection> => {
    const conn = ConnectionFns.fromPartial(input);
    const prev = prevSegment(conn);
    const token = ctx.metadata[MD_CLIENT_TOKEN];
    if (prev && token) {
      const expires = ctx.metadata[MD_CLIENT_TOKEN_EXPIRES];
      prev.token = token;
      if (expires) prev.expires = parseRfc3339Nano(expires, MD_CLIENT_TOKEN_EXPIRES);
    }
    const own = currentSegment(conn);
    if (!own) throw new InvalidArgumentError('connection.path', conn.path, 'no segment at path.index (update-path comes first)');
    const issued = await deps.tokens.generate();
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
