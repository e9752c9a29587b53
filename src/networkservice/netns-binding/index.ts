/**
 * `netnsBinding(options)` — a client may only touch its own pod. For a call that came in over gRPC (the
 * context has `peer`), every KERNEL mechanism in the request (the preferences and the connection's
 * current mechanism) must name the network namespace the caller's unix socket was created in (core/peer.ts:
 * what the caller cannot fake), unless the caller is trusted (`options.trusted`: the forwarder trusts the
 * nsmgr that checked the client, and processes in its own netns). Otherwise the
 * Request is refused with PermissionDenied naming the netns and the caller, before anything is created.
 *
 * The netns a connection was bound to at its first Request is kept in the connection's state: a later
 * Request or a Close of that connection id from a process in another netns is refused too (a client
 * that learns another pod's connection id can neither take it over nor close it). Calls the chain makes
 * itself (heal, refresh, timeout: no `peer`) are not checked; what they carry was checked when it came in.
 *
 * Over tcp the caller's process cannot be known: a kernel mechanism is refused there (remote callers
 * name their pod's netns only at their own node's nsmgr). Requests without a KERNEL mechanism pass.
 * Sits right after `begin` (it needs the connection's state).
 */
import type { Connection, Mechanism } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { MECH_KERNEL, PARAM_INODE_URL } from '../../api/constants.js';
import type { NetworkServiceElement } from '../../core/chain.js';
import { withContext, type CallContext } from '../../core/context.js';
import { PermissionDeniedError } from '../../core/errors.js';
import { listenerNetns, netnsIdentity, type Peer } from '../../core/peer.js';
import { StateKey } from '../../core/state.js';
import { CLIENT_URL } from '../client-url/index.js';

export const NETNS_BINDING = 'netns-binding';

/** The netns (`inode://dev/ino`) the connection's client was in when it was first requested. */
export const BOUND_NETNS = new StateKey<string>('netnsBinding.netns');

export interface NetnsBindingOptions {
  /** Callers allowed to name any netns (they did the check themselves). Default: nobody. */
  readonly trusted?: (peer: Peer) => boolean | Promise<boolean>;
  /** (forwarder) Take the netns an endpoint names for its end as it is (`endpointNetnsBinding` off). */
  readonly trustEndpoints?: boolean;
}

function kernelNetnsUrls(mechanisms: ReadonlyArray<Mechanism | undefined>): string[] {
  const urls = new Set<string>();
  for (const m of mechanisms) {
    const url = m?.type === MECH_KERNEL ? m.parameters?.[PARAM_INODE_URL] : undefined;
    if (url) urls.add(url);
  }
  return [...urls];
}

export function netnsBinding(options: NetnsBindingOptions = {}): NetworkServiceElement {
  const trusted = options.trusted ?? (() => false);

  /** The caller, or undefined when the call need not be checked (in-process, or trusted). */
  const caller = async (ctx: CallContext, what: string): Promise<Peer | undefined> => {
    if (!ctx.peer) return undefined;
    const peer = await ctx.peer();
    if (!peer) {
      throw new PermissionDeniedError(
        `${what}: the caller's network namespace is unknown (a kernel interface is only served to a process on this node, over its unix socket)`,
      );
    }
    return (await trusted(peer)) ? undefined : peer;
  };

  const checkBound = (ctx: CallContext, peer: Peer, conn: Connection | undefined): void => {
    const bound = ctx.state.get(BOUND_NETNS);
    if (bound && peer.netns !== bound) {
      throw new PermissionDeniedError(`connection ${conn?.id ?? ''} belongs to a client in netns ${bound}; the caller is in netns ${peer.netns}`);
    }
  };

  return {
    name: NETNS_BINDING,
    requires: ['state'],
    async request(req: NetworkServiceRequest, ctx, next) {
      const urls = kernelNetnsUrls([...req.mechanismPreferences, req.connection?.mechanism]);
      const bound = ctx.state.get(BOUND_NETNS);
      if (urls.length === 0 && !bound) return next.request(req, ctx);
      const peer = await caller(ctx, `netns ${urls.join(', ') || bound}`);
      if (!peer) return next.request(req, ctx);
      checkBound(ctx, peer, req.connection);
      for (const url of urls) {
        if ((await netnsIdentity(url)) !== peer.netns) {
          throw new PermissionDeniedError(
            `netns ${url} does not belong to the caller (in netns ${peer.netns}); a client may only request interfaces in its own network namespace`,
          );
        }
      }
      const conn = await next.request(req, ctx);
      if (!bound) ctx.state.set(BOUND_NETNS, peer.netns);
      return conn;
    },
    async close(conn, ctx, next) {
      if (ctx.state.get(BOUND_NETNS)) {
        const peer = await caller(ctx, `close of connection ${conn.id}`);
        if (peer) checkBound(ctx, peer, conn);
      }
      return next.close(conn, ctx);
    },
  };
}

/** How long a looked-up listener's netns is believed before it is looked up again. */
const LISTENER_TTL_MS = 1_000;
const MAX_CACHED_LISTENERS = 4096;

/** The netns of the servers listening at unix socket paths (`listenerNetns`), remembered with their age. */
class ListenerNetnsCache {
  readonly #entries = new Map<string, { netns: string | undefined; at: number }>();

  constructor(private readonly now: () => number) {}

  /** What the last lookup of `path` found, however old. */
  cached(path: string): string | undefined {
    return this.#entries.get(path)?.netns;
  }

  /** The netns of `path`'s listener, looked up again when the last lookup is `maxAgeMs` old (0: always). */
  async lookup(path: string, maxAgeMs: number): Promise<string | undefined> {
    const hit = this.#entries.get(path);
    if (hit && this.now() - hit.at < maxAgeMs) return hit.netns;
    if (this.#entries.size >= MAX_CACHED_LISTENERS) this.#entries.clear();
    const entry = { netns: await listenerNetns(path), at: this.now() };
    this.#entries.set(path, entry);
    return entry.netns;
  }
}

/**
 * The forwarder's trust: a caller in the forwarder's own netns (on one host, the nsmgr and the operator's
 * tools; on Kubernetes the node's, as the forwarder is hostNetwork — such a process could program the
 * kernel itself), or in the netns of the server listening at `serverPath` (the nsmgr the forwarder is
 * registered with, which bound the client to its netns). That netns is looked up on demand and again when
 * a caller does not match (the nsmgr may have restarted in a new pod), at most once per second.
 */
export function trustNodeAndServer(deps: { ownNetns: string | undefined; serverPath: string | undefined; now?: () => number }): (peer: Peer) => Promise<boolean> {
  const listeners = new ListenerNetnsCache(deps.now ?? Date.now);
  return async (peer) => {
    if (deps.ownNetns !== undefined && peer.netns === deps.ownNetns) return true;
    if (!deps.serverPath) return false;
    if (listeners.cached(deps.serverPath) === peer.netns) return true;
    return (await listeners.lookup(deps.serverPath, LISTENER_TTL_MS)) === peer.netns;
  };
}

/**
 * `endpointNetnsBinding()` — the endpoint side of the same rule, in the forwarder's connect client chain:
 * the netns an endpoint names for its end (the KERNEL mechanism of its response) must be the netns of the
 * process serving the endpoint's unix socket (the one the forwarder just dialed, `CLIENT_URL`). A
 * registration cannot make the forwarder put an interface into another pod. Otherwise the endpoint's
 * connection is closed again and the Request fails with PermissionDenied naming both netns. Endpoints on
 * tcp are not checked (their listener's netns cannot be told from the table alone): see the README.
 * The listener's netns is cached per socket for a second and looked up again on a mismatch.
 */
export function endpointNetnsBinding(deps: { now?: () => number } = {}): NetworkServiceElement {
  const listeners = new ListenerNetnsCache(deps.now ?? Date.now);
  return {
    name: 'endpoint-netns-binding',
    requires: ['state'],
    async request(req, ctx, next) {
      const conn = await next.request(req, ctx);
      const url = conn.mechanism?.type === MECH_KERNEL ? conn.mechanism.parameters?.[PARAM_INODE_URL] : undefined;
      const to = ctx.state.get(CLIENT_URL);
      if (!url || !to?.startsWith('unix://')) return conn;
      const path = to.slice('unix://'.length);
      const named = await netnsIdentity(url);
      if (named !== undefined && (named === (await listeners.lookup(path, LISTENER_TTL_MS)) || named === (await listeners.lookup(path, 0)))) return conn;
      const served = listeners.cached(path) ?? 'unknown';
      await next.close(conn, withContext(ctx, { signal: AbortSignal.timeout(CLEANUP_TIMEOUT_MS) })).catch(() => undefined);
      throw new PermissionDeniedError(
        `endpoint ${conn.networkServiceEndpointName} named netns ${url} for its end, but it serves ${to} from netns ${served}; an endpoint may only name its own network namespace`,
      );
    },
    close: (conn, ctx, next) => next.close(conn, ctx),
  };
}

const CLEANUP_TIMEOUT_MS = 5_000;
