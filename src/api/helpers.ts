/**
 * Small helpers over the generated wire types: deep copies, defaults, selector matching (NSM
 * `connection_helpers` semantics), and path access.
 */
import type { Connection, MonitorScopeSelector, Path, PathSegment } from './gen/connection.js';
import { Connection as ConnectionFns } from './gen/connection.js';
import type { NetworkServiceRequest } from './gen/networkservice.js';
import type { IPContext } from './gen/connectioncontext.js';
import { IPContext as IPContextFns } from './gen/connectioncontext.js';

export function cloneConnection(c: Connection): Connection {
  return ConnectionFns.fromPartial(c);
}

export function cloneRequest(r: NetworkServiceRequest): NetworkServiceRequest {
  return {
    connection: r.connection ? cloneConnection(r.connection) : undefined,
    mechanismPreferences: r.mechanismPreferences.map((m) => ({ cls: m.cls, type: m.type, parameters: { ...m.parameters } })),
  };
}

/** Returns the connection's ip context, creating empty context objects as needed. */
export function ipContextOf(conn: Connection): IPContext {
  conn.context ??= { ipContext: undefined, dnsContext: undefined, ethernetContext: undefined, extraContext: {}, MTU: 0 };
  conn.context.ipContext ??= IPContextFns.fromPartial({});
  return conn.context.ipContext;
}

export function pathOf(conn: Connection): Path {
  conn.path ??= { index: 0, pathSegments: [] };
  return conn.path;
}

export function currentSegment(conn: Connection): PathSegment | undefined {
  return conn.path?.pathSegments[conn.path.index];
}

export function prevSegment(conn: Connection): PathSegment | undefined {
  const p = conn.path;
  return p && p.index > 0 ? p.pathSegments[p.index - 1] : undefined;
}

export function nextSegment(conn: Connection): PathSegment | undefined {
  const p = conn.path;
  return p ? p.pathSegments[p.index + 1] : undefined;
}

function segmentMatches(want: PathSegment, have: PathSegment): boolean {
  return (want.name === '' || want.name === have.name) && (want.id === '' || want.id === have.id) && (want.token === '' || want.token === have.token);
}

/**
 * NSM selector matching: empty selector matches all; `networkServices` must contain the connection's
 * service if non-empty; `pathSegments` must match a contiguous run of the path ("" is a wildcard).
 */
export function matchesSelector(conn: Connection, sel: MonitorScopeSelector): boolean {
  if (sel.networkServices.length > 0 && !sel.networkServices.includes(conn.networkService)) return false;
  if (sel.pathSegments.length === 0) return true;
  const segs = conn.path?.pathSegments ?? [];
  for (let start = 0; start + sel.pathSegments.length <= segs.length; start++) {
    if (sel.pathSegments.every((w, i) => segmentMatches(w, segs[start + i]))) return true;
  }
  return false;
}

/** A short description for logs: `id [a -> b -> c]`. */
export function describeConnection(c: Connection): string {
  return `${c.id} [${(c.path?.pathSegments ?? []).map((s) => s.name).join(' -> ')}]`;
}
