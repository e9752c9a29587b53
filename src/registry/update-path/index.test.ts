import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MD_REGISTRY_PATH } from '../../api/constants.js';
import { NetworkServiceEndpoint, type NetworkServiceEndpointQuery, type NetworkServiceEndpointResponse } from '../../api/gen/registry.js';
import { registryChain, registryPassThrough } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { clientTokenMetadata } from '../../core/token.js';
import { decodeRegistryPath, encodeRegistryPath } from '../../security/registry-path.js';
import { decodeToken, tokenRequestFor } from '../../security/token.js';
import { testIdentity } from '../../testing/secure-hop.js';
import { REGISTRY_PATH, updatePathRegistryServer } from './index.js';

type E = NetworkServiceEndpoint;
type Q = NetworkServiceEndpointQuery;
type R = NetworkServiceEndpointResponse;

const nse = testIdentity('spiffe://reg-path.test/ns/p/nse');
const nsmgr = testIdentity('spiffe://reg-path.test/nsmgr');
const registry = testIdentity('spiffe://reg-path.test/registry');

/** A hop `id` with update-path and a tail that records what it was given. */
function hop(id: ReturnType<typeof testIdentity>) {
  const seen: E[] = [];
  const chain = registryChain<E, Q, R>('t', [
    updatePathRegistryServer<E, Q, R>({ tokens: id.tokens }, { insecure: false }),
    registryPassThrough<E, Q, R>('tail', { register: async (item) => (seen.push(item), item) }),
  ]);
  return { chain, seen };
}

function call(from: ReturnType<typeof testIdentity>, to: ReturnType<typeof testIdentity>, path?: string) {
  const headers: Record<string, string> = {};
  const metadata: Record<string, string> = { ...clientTokenMetadata(from.tokens.issue(tokenRequestFor(to.svid.leaf))) };
  if (path !== undefined) metadata[MD_REGISTRY_PATH] = path;
  const ctx = newContext({ metadata, peerIdentity: from.peer, setResponseHeader: (k, v) => void (headers[k] = v) });
  return { ctx, headers };
}

describe('registry update-path server', () => {
  it('first hop: an absent path becomes [caller, this hop] at index 1; path_ids from the subs; header at the caller index', async () => {
    const { chain, seen } = hop(nsmgr);
    const { ctx, headers } = call(nse, nsmgr);
    await chain.register(NetworkServiceEndpoint.fromPartial({ name: 'a' }), ctx);
    assert.deepEqual(seen[0].pathIds, [nse.spiffeId, nsmgr.spiffeId]);
    assert.equal(ctx.state.get(REGISTRY_PATH)!.index, 1);
    const answered = decodeRegistryPath(headers[MD_REGISTRY_PATH])!;
    assert.equal(answered.index, 0);
    assert.deepEqual(decodeToken(answered.segments[1].token).payload.aud, [nse.spiffeId]);
  });

  it('second hop: the caller segment gets its per-RPC token, this hop is appended', async () => {
    const first = hop(nsmgr);
    const c1 = call(nse, nsmgr);
    await first.chain.register(NetworkServiceEndpoint.fromPartial({ name: 'b' }), c1.ctx);
    const { chain, seen } = hop(registry);
    const c2 = call(nsmgr, registry, encodeRegistryPath(c1.ctx.state.get(REGISTRY_PATH)!));
    await chain.register(first.seen[0], c2.ctx);
    assert.deepEqual(seen[0].pathIds, [nse.spiffeId, nsmgr.spiffeId, registry.spiffeId]);
    const path = c2.ctx.state.get(REGISTRY_PATH)!;
    assert.equal(path.index, 2);
    assert.deepEqual(decodeToken(path.segments[1].token).payload.aud, [registry.spiffeId], "nsmgr's token for the registry");
    assert.equal(decodeRegistryPath(c2.headers[MD_REGISTRY_PATH])!.index, 1);
  });

  it('a malformed path is INVALID_ARGUMENT naming the metadata', async () => {
    const { chain, seen } = hop(nsmgr);
    for (const bad of ['not json', '{"Index":3,"PathSegments":[]}', '{"Index":0,"PathSegments":[{"token":1}]}']) {
      await assert.rejects(chain.register(NetworkServiceEndpoint.fromPartial({ name: 'c' }), call(nse, nsmgr, bad).ctx), { name: 'InvalidArgumentError', field: 'path (metadata)' }, bad);
    }
    assert.equal(seen.length, 0);
  });

  it('insecure: passes through (no path_ids, no header)', async () => {
    const chain = registryChain<E, Q, R>('t', [updatePathRegistryServer<E, Q, R>({}, { insecure: true })]);
    const headers: Record<string, string> = {};
    const out = await chain.register(NetworkServiceEndpoint.fromPartial({ name: 'd' }), newContext({ setResponseHeader: (k, v) => void (headers[k] = v) }));
    assert.deepEqual(out.pathIds, []);
    assert.deepEqual(headers, {});
  });

  it('secure without a token generator is refused when the chain is built', () => {
    assert.throws(() => updatePathRegistryServer({}, { insecure: false }), { name: 'InvalidArgumentError', field: 'tokens' });
  });
});
