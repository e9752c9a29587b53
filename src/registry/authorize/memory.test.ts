import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NetworkServiceEndpoint, type NetworkServiceEndpointQuery, type NetworkServiceEndpointResponse } from '../../api/gen/registry.js';
import { registryChain, registryPassThrough } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { clientTokenMetadata } from '../../core/token.js';
import { tokenRequestFor } from '../../security/token.js';
import { testIdentity, type TestIdentity } from '../../testing/secure-hop.js';
import { updatePathRegistryServer } from '../update-path/index.js';
import { authorizeRegistryServer } from './index.js';

type E = NetworkServiceEndpoint;
type Q = NetworkServiceEndpointQuery;
type R = NetworkServiceEndpointResponse;

const nsmgr = testIdentity('spiffe://reg-mem.test/nsmgr');
const owner = testIdentity('spiffe://reg-mem.test/ns/a/nse');
const other = testIdentity('spiffe://reg-mem.test/ns/b/nse');

describe('registry authorize without a store (nsmgr): the registrants it remembers', () => {
  const clock = new FakeClock(Date.now());
  const chain = registryChain<E, Q, R>('nsmgr', [
    updatePathRegistryServer<E, Q, R>({ tokens: nsmgr.tokens }, { insecure: false }),
    authorizeRegistryServer<E, Q, R>({ clock }, { insecure: false, maxNames: 2 }),
    // what the rest of nsmgr's chain answers: a registration capped to one minute
    registryPassThrough<E, Q, R>('expire-cap', { register: async (item) => ({ ...item, expirationTime: new Date(clock.now() + 60_000) }) }),
  ]);
  const from = (who: TestIdentity) => newContext({ metadata: clientTokenMetadata(who.tokens.issue(tokenRequestFor(nsmgr.svid.leaf))), peerIdentity: who.peer });
  const nse = (name: string) => NetworkServiceEndpoint.fromPartial({ name });

  it('another identity is refused while the registration lives, allowed once it expired unrefreshed', async () => {
    await chain.register(nse('a'), from(owner));
    await assert.rejects(chain.register(nse('a'), from(other)), { name: 'PermissionDeniedError', policy: 'registry_client_allowed' });
    await clock.advance(30_000);
    await chain.register(nse('a'), from(owner)); // a refresh: another minute
    await clock.advance(45_000);
    await assert.rejects(chain.unregister(nse('a'), from(other)), { name: 'PermissionDeniedError' });
    await clock.advance(16_000);
    await chain.register(nse('a'), from(other));
  });

  it('at most maxNames names are remembered: one more is RESOURCE_EXHAUSTED', async () => {
    await chain.register(nse('b'), from(owner));
    await assert.rejects(chain.register(nse('c'), from(owner)), { name: 'ResourceExhaustedError' });
    await chain.unregister(nse('b'), from(owner));
    await chain.register(nse('c'), from(owner));
  });
});
