/**
 * `update-path` — registry server element for the registry's path (upstream `sdk:pkg/registry/common/
 * grpcmetadata` + `updatepath`, one element here since nsm-ts has no other use of the metadata). On
 * Register and Unregister of a NetworkService or an endpoint:
 *
 * - reads the path from the `path` metadata (absent: an empty path, as upstream's first hop sees from a
 *   client that sent none), bounded and validated by security/registry-path.ts (INVALID_ARGUMENT naming it);
 * - updates it for this hop (`updateRegistryPath`): the caller's `nsm-client-token` into the caller's
 *   segment, a fresh own token for the caller (`aud` its SPIFFE ID, `exp` at most its certificate's
 *   NotAfter) into this hop's; sets `path_ids` from the tokens' `sub` (`registryPathIds`);
 * - keeps the path in the call's state (`REGISTRY_PATH`) for `authorize` and for `connect`, which sends it
 *   on to the next registry and puts the path that registry returns back there;
 * - answers with the response header `path`, the path with the index restored to the caller's (upstream
 *   registry clients run `next_token_signed` on it and fail without it).
 *
 * Find passes through (upstream updates no path on Find). On an insecure hop (`NSM_INSECURE=true`:
 * HS256 tokens without SPIFFE IDs) the element passes through: nothing is read, set or answered.
 * Placement: first after `validate` in every registry server chain, before `authorize`.
 */
import { MD_REGISTRY_PATH } from '../../api/constants.js';
import { registryPassThrough, type RegistryElement } from '../../core/chain.js';
import type { CallContext } from '../../core/context.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { StateKey } from '../../core/state.js';
import { readClientToken, type TokenGenerator } from '../../core/token.js';
import {
  decodeRegistryPath,
  encodeRegistryPath,
  registryPathIds,
  updateRegistryPath,
  type RegistryPath,
  type RegistryPathLimits,
} from '../../security/registry-path.js';
import { tokenRequestForPeer } from '../../security/token.js';

/** The registry path of the call in progress (this hop's index while going down, the downstream's answer after). */
export const REGISTRY_PATH = new StateKey<RegistryPath>('registry.path');

/** What both registry kinds have: a name and the identities of the hops that registered it. */
export interface PathItem {
  readonly name: string;
  readonly pathIds: string[];
}

export interface UpdatePathOptions {
  /** A plaintext hop: pass through. Required: the component decides. */
  readonly insecure: boolean;
  /** Bounds of the incoming `path` metadata. */
  readonly limits?: RegistryPathLimits;
}

export const EMPTY_REGISTRY_PATH: RegistryPath = Object.freeze({ index: 0, segments: Object.freeze([]) });

export function updatePathRegistryServer<T extends PathItem, Q, R>(deps: { tokens?: TokenGenerator }, options: UpdatePathOptions): RegistryElement<T, Q, R> {
  if (options.insecure) return registryPassThrough<T, Q, R>('update-path');
  const tokens = deps.tokens;
  if (!tokens) throw new InvalidArgumentError('tokens', undefined, 'a secure registry hop needs a token generator (the SVID signs its path segment)');
  decodeRegistryPath(encodeRegistryPath(EMPTY_REGISTRY_PATH), options.limits); // bad limits fail when the chain is built

  /** Updates the path for this hop, stores it, and returns the item with its new path_ids and the caller's index. */
  const update = async (item: T, ctx: CallContext): Promise<{ item: T; callerIndex: number }> => {
    const incoming = decodeRegistryPath(ctx.metadata[MD_REGISTRY_PATH], options.limits) ?? EMPTY_REGISTRY_PATH;
    const peerToken = readClientToken(ctx.metadata)?.token ?? '';
    const own = await tokens.generate(ctx.peerIdentity ? tokenRequestForPeer(ctx.peerIdentity) : undefined);
    const { path, callerIndex } = updateRegistryPath(incoming, peerToken, own.token);
    ctx.state.set(REGISTRY_PATH, path);
    return { item: { ...item, pathIds: registryPathIds(item.pathIds ?? [], path, peerToken, own.token) }, callerIndex };
  };
  const answer = (ctx: CallContext, callerIndex: number) => {
    const path = ctx.state.get(REGISTRY_PATH);
    if (path) ctx.setResponseHeader?.(MD_REGISTRY_PATH, encodeRegistryPath({ index: callerIndex, segments: path.segments }));
  };
  return {
    name: 'update-path',
    async register(input, ctx, next) {
      const { item, callerIndex } = await update(input, ctx);
      const out = await next.register(item, ctx);
      answer(ctx, callerIndex);
      return out;
    },
    async unregister(input, ctx, next) {
      const { item, callerIndex } = await update(input, ctx);
      await next.unregister(item, ctx);
      answer(ctx, callerIndex);
    },
    find: (q, ctx, next) => next.find(q, ctx),
  };
}
