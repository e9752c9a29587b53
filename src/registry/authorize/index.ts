/**
 * `authorize` — registry server element (upstream `sdk:pkg/registry/common/authorize`, server side): on
 * Register, common + `registry_client_allowed` + `prev_token_signed` on the left side of the registry
 * path (`REGISTRY_PATH`, set by `update-path`), the caller's token verified with its certificate
 * (`ctx.peerIdentity`); on Unregister the same with `forClose` (an expired token is allowed and logged).
 * `registry_client_allowed`: only the first identity of the `path_ids` a name was registered with (its
 * original registrant, through any nsmgr) may refresh or unregister it; a new name is always allowed.
 * Where the registrant of a name is read: with `deps.registrants` (the registry itself: the `path_ids` its
 * store holds for the name — forgotten when the registration expires or is removed, kept across a restart
 * of a persistent store), else the element remembers each name's `path_ids` after a successful Register
 * and forgets them after a successful Unregister or once an endpoint's registration expired unrefreshed
 * (as upstream keeps them in a map; nsmgr's proxy), at most `maxNames` names (a new name beyond that is
 * RESOURCE_EXHAUSTED). A name recorded with no `path_ids` (registered over an insecure hop, or a custom
 * resource applied by hand) has no registrant: allowed.
 * A refusal is a PolicyDeniedError (PERMISSION_DENIED) naming policy and segment, logged once here;
 * nothing after runs (no store, no forwarding).
 * Find passes through (no policy upstream). Pass-through on an insecure hop.
 * Placement: right after `update-path`, before expire/store/connect.
 *
 * Client side (`authorizeRegistryClient`, upstream's registry client authorize): after a Register, the
 * path the server answered in its `path` header (put into `REGISTRY_PATH` by `connect`) is checked with
 * common + `registry_client_allowed` + `next_token_signed`, the server's token verified with the
 * certificate of the channel's mTLS handshake; a refused answer is an error (the registration is not
 * trusted). Unregister and Find pass through. Placement: in an
 * NSE's or forwarder's registry client chain right before `connect`.
 */
import { registryPassThrough, type RegistryElement } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import type { CallContext } from '../../core/context.js';
import { InvalidArgumentError, ResourceExhaustedError } from '../../core/errors.js';
import type { ChannelPool } from '../../core/transport.js';
import { authorizeRegistryClient as registryClientPolicies, authorizeRegistryServer as registryServerPolicies, enforce } from '../../security/policies.js';
import { EMPTY_REGISTRY_PATH, REGISTRY_PATH, type PathItem } from '../update-path/index.js';

/** Default bound of the names whose registrant is remembered. */
export const DEFAULT_MAX_NAMES = 100_000;
export const MAX_MAX_NAMES = 10_000_000;

export interface AuthorizeRegistryOptions {
  /** A plaintext hop: pass through. Required: the component decides. */
  readonly insecure: boolean;
  /** DEFAULT_MAX_NAMES, at most MAX_MAX_NAMES. */
  readonly maxNames?: number;
}

export interface AuthorizeRegistryServerDeps {
  readonly clock?: Clock;
  /** The `path_ids` recorded for a name (the registry's store); undefined when the name is not registered. */
  readonly registrants?: (name: string, signal: AbortSignal) => Promise<readonly string[] | undefined>;
}

/** When a registration answered by the next hops runs out (endpoints); NetworkServices do not expire. */
function expiryOf(item: unknown): number | undefined {
  const t = (item as { expirationTime?: Date }).expirationTime;
  return t instanceof Date && !Number.isNaN(t.getTime()) ? t.getTime() : undefined;
}

export function authorizeRegistryServer<T extends PathItem, Q, R>(deps: AuthorizeRegistryServerDeps, options: AuthorizeRegistryOptions): RegistryElement<T, Q, R> {
  if (options.insecure) return registryPassThrough<T, Q, R>('authorize');
  const clock = deps.clock ?? realClock;
  const maxNames = options.maxNames ?? DEFAULT_MAX_NAMES;
  if (!Number.isInteger(maxNames) || maxNames < 1 || maxNames > MAX_MAX_NAMES) throw new InvalidArgumentError('maxNames', maxNames, `must be an integer from 1 to ${MAX_MAX_NAMES}`);
  /** name → its registrant's path_ids and, for an endpoint, when its registration runs out unless refreshed. */
  const registrants = new Map<string, { readonly ids: readonly string[]; readonly until?: number }>();
  const remembered = (name: string): readonly string[] | undefined => {
    const r = registrants.get(name);
    if (r?.until !== undefined && r.until <= clock.now()) registrants.delete(name);
    else return r?.ids;
    return undefined;
  };
  const recorded = async (name: string, ctx: CallContext): Promise<readonly string[] | undefined> => {
    const ids = deps.registrants ? await deps.registrants(name, ctx.signal) : remembered(name);
    return ids && ids.length > 0 ? ids : undefined;
  };

  const check = async (item: T, ctx: CallContext, forClose: boolean) => {
    const path = ctx.state.get(REGISTRY_PATH) ?? EMPTY_REGISTRY_PATH;
    const existingPathIds = await recorded(item.name, ctx);
    const input = {
      segments: path.segments,
      index: path.index,
      peer: ctx.peerIdentity?.certificate,
      now: clock.now(),
      resourceName: item.name,
      existingPathIds,
    };
    enforce(registryServerPolicies(input, { forClose }), ctx.log);
  };
  return {
    name: 'authorize',
    requires: ['update-path'],
    async register(item, ctx, next) {
      await check(item, ctx, false);
      if (!deps.registrants && !registrants.has(item.name) && registrants.size >= maxNames) {
        throw new ResourceExhaustedError(`the registry remembers the registrants of at most ${maxNames} names; "${item.name}" is one more`);
      }
      const out = await next.register(item, ctx);
      if (!deps.registrants) registrants.set(item.name, { ids: [...item.pathIds], until: expiryOf(out) });
      return out;
    },
    async unregister(item, ctx, next) {
      await check(item, ctx, true);
      await next.unregister(item, ctx);
      registrants.delete(item.name);
    },
    find: (q, ctx, next) => next.find(q, ctx),
  };
}

export function authorizeRegistryClient<T extends PathItem, Q, R>(deps: { pool: ChannelPool; url: string; clock?: Clock }, options: AuthorizeRegistryOptions): RegistryElement<T, Q, R> {
  if (options.insecure) return registryPassThrough<T, Q, R>('authorize-client');
  const clock = deps.clock ?? realClock;
  const maxNames = options.maxNames ?? DEFAULT_MAX_NAMES;
  if (!Number.isInteger(maxNames) || maxNames < 1 || maxNames > MAX_MAX_NAMES) throw new InvalidArgumentError('maxNames', maxNames, `must be an integer from 1 to ${MAX_MAX_NAMES}`);
  const registered = new Map<string, readonly string[]>();
  return {
    name: 'authorize-client',
    async register(item, ctx, next) {
      const out = await next.register(item, ctx);
      const path = ctx.state.get(REGISTRY_PATH) ?? EMPTY_REGISTRY_PATH;
      const input = {
        segments: path.segments,
        index: path.index,
        peer: deps.pool.serverIdentity(deps.url)?.certificate,
        now: clock.now(),
        resourceName: item.name,
        existingPathIds: registered.get(item.name),
      };
      enforce(registryClientPolicies(input), ctx.log);
      if (registered.has(item.name) || registered.size < maxNames) registered.set(item.name, [...out.pathIds]);
      return out;
    },
    async unregister(item, ctx, next) {
      await next.unregister(item, ctx);
      registered.delete(item.name);
    },
    find: (q, ctx, next) => next.find(q, ctx),
  };
}
