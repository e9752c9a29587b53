/**
 * `update-path`: maintains `connection.path` and `connection.id` at each hop (upstream
 * `sdk:pkg/networkservice/common/updatepath`). First element of every server and client chain.
 *
 * Algorithm (`updatePath`, spec §1.3), for a hop called `name`:
 * 1. no segments: `index = 0`, generate `conn.id` if empty, append `{name, id: conn.id}`;
 * 2. `segments[index].name == name` (this hop already on the path: refresh/heal): `conn.id = segments[index].id`;
 * 3. otherwise the request comes from the previous hop: `segments[index].id` must equal `conn.id`
 *    (InvalidArgumentError otherwise); a next segment with another name is overwritten with `{name, new UUID}`;
 *    `index++`; append `{name, new UUID}` if no segment is there; `conn.id = segments[index].id`.
 *
 * Guarantees: re-requests with the same path keep every hop's id. Client and server run the same
 * algorithm; on the way back both restore `conn.id` / `path.index` to the index the caller sent (for a
 * server that is the previous hop's index, so the caller sees the connection as its own — the NSC gets
 * `index = 0`). Close runs the same update so the rest of the chain sees this hop's id.
 */
import { randomUUID } from 'node:crypto';
import type { Connection } from '../../api/gen/connection.js';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { InvalidArgumentError } from '../../core/errors.js';

export type IdGenerator = () => string;

/**
 * Updates `conn` in place for the hop `name` and returns the index the caller had (the index to restore on
 * the way back). Throws InvalidArgumentError when the path and the connection id disagree.
 */
export function updatePath(conn: Connection, name: string, newId: IdGenerator = randomUUID): number {
  conn.path ??= { index: 0, pathSegments: [] };
  const path = conn.path;
  const segs = path.pathSegments;
  if (segs.length === 0) {
    path.index = 0;
    if (conn.id === '') conn.id = newId();
    segs.push(segment(name, conn.id));
    return 0;
  }
  if (path.index < segs.length && segs[path.index].name === name) {
    conn.id = segs[path.index].id;
    return path.index;
  }
  const nextIndex = path.index + 1;
  if (nextIndex > segs.length) {
    throw new InvalidArgumentError('connection.path.index', path.index, `must be less than the number of path segments (${segs.length})`);
  }
  if (segs[path.index].id !== conn.id) {
    throw new InvalidArgumentError('connection.id', conn.id, `must equal the id of path segment ${path.index} ("${segs[path.index].id}")`);
  }
  if (nextIndex < segs.length && segs[nextIndex].name !== name) {
    segs[nextIndex] = segment(name, newId());
  }
  path.index = nextIndex;
  if (nextIndex >= segs.length) segs.push(segment(name, newId()));
  conn.id = segs[nextIndex].id;
  return nextIndex - 1;
}

function segment(name: string, id: string) {
  return { name, id, token: '', expires: undefined, metrics: {} };
}

export interface UpdatePathOptions {
  /** Generates segment ids. Default: `crypto.randomUUID`. */
  readonly newId?: IdGenerator;
}

function element(kind: 'server' | 'client', name: string, options: UpdatePathOptions): NetworkServiceElement {
  if (name === '') throw new InvalidArgumentError('update-path name', name, 'the hop name must not be empty');
  const newId = options.newId ?? randomUUID;
  return {
    name: `update-path-${kind}`,
    provides: ['update-path'],
    async request(req, ctx, next) {
      const conn = req.connection ? ConnectionFns.fromPartial(req.connection) : ConnectionFns.fromPartial({});
      const index = updatePath(conn, name, newId);
      const out = await next.request({ ...req, connection: conn }, ctx);
      const seg = out.path?.pathSegments[index];
      if (!out.path || !seg) {
        throw new InvalidArgumentError('connection.path', out.path, `returned path has no segment ${index}`);
      }
      out.id = seg.id;
      out.path.index = index;
      return out;
    },
    async close(conn, ctx, next) {
      const c = ConnectionFns.fromPartial(conn);
      updatePath(c, name, newId);
      return next.close(c, ctx);
    },
  };
}

/** Server side: `updatePathServer({ name })`. */
export function updatePathServer(deps: { name: string }, options: UpdatePathOptions = {}): NetworkServiceElement {
  return element('server', deps.name, options);
}

/** Client side: `updatePathClient({ name })` (same algorithm; first element of client chains). */
export function updatePathClient(deps: { name: string }, options: UpdatePathOptions = {}): NetworkServiceElement {
  return element('client', deps.name, options);
}
