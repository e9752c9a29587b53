/**
 * `validate` server: refuses a malformed Request or Close before anything else sees it, so a malformed
 * call answers INVALID_ARGUMENT (and never NOT_FOUND or UNKNOWN from deeper in the chain) and leaves no
 * state. Malformed means: a Request without a connection or without a network service; a path whose index
 * lies beyond its segments, or a segment without a name or id; a Close that names no connection (neither
 * an id nor a path); a mechanism preference without a type; any value over the size limits of
 * `api/limits.ts`. Errors are InvalidArgumentError naming the wire field and an excerpt of the value.
 * A well-formed request that nothing can serve (unknown service, no endpoint) passes here and is
 * NOT_FOUND further down. First element of every server chain (`components/endpoint.ts`), before
 * `update-path`. No state, no background work. Upstream spreads these checks over its elements (older
 * API versions had `Connection.IsValid`); nsm-ts validates at the boundary, as `registry/validate`.
 */
import type { Connection, Path } from '../../api/gen/connection.js';
import { checkConnection, checkRequest } from '../../api/limits.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { InvalidArgumentError } from '../../core/errors.js';

function checkPath(path: Path | undefined): void {
  if (!path) return;
  const n = path.pathSegments.length;
  if (path.index >= Math.max(n, 1)) {
    throw new InvalidArgumentError('connection.path.index', path.index, `must be less than the number of path segments (${n})`);
  }
  path.pathSegments.forEach((s, i) => {
    if (s.name === '') throw new InvalidArgumentError(`connection.path.path_segments[${i}].name`, s.name, 'must not be empty');
    if (s.id === '') throw new InvalidArgumentError(`connection.path.path_segments[${i}].id`, s.id, 'must not be empty');
  });
}

/** Throws InvalidArgumentError when the Request is malformed (see the module comment). */
export function validateRequest(req: Parameters<NetworkServiceElement['request']>[0]): void {
  const conn = req.connection;
  if (!conn) throw new InvalidArgumentError('connection', conn, 'a Request needs a connection');
  checkRequest(req);
  if (conn.networkService.trim() === '') throw new InvalidArgumentError('connection.network_service', conn.networkService, 'must not be empty');
  checkPath(conn.path);
  req.mechanismPreferences.forEach((m, i) => {
    if (m.type === '') throw new InvalidArgumentError(`mechanism_preferences[${i}].type`, m.type, 'must not be empty');
  });
}

/** Throws InvalidArgumentError when the Close is malformed (see the module comment). */
export function validateClose(conn: Connection): void {
  checkConnection(conn);
  if (conn.id === '' && (conn.path?.pathSegments.length ?? 0) === 0) {
    throw new InvalidArgumentError('connection.id', conn.id, 'must not be empty: a Close names the connection by its id or its path');
  }
  checkPath(conn.path);
}

export function validateServer(): NetworkServiceElement {
  return {
    name: 'validate',
    async request(req, ctx, next) {
      validateRequest(req);
      return next.request(req, ctx);
    },
    async close(conn, ctx, next) {
      validateClose(conn);
      return next.close(conn, ctx);
    },
  };
}
