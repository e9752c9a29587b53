import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkService } from '../../api/gen/registry.js';
import { registryChain } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { setPayloadNsServer } from './index.js';

describe('set-payload', () => {
  it('fills an empty payload with IP and keeps a given one', async () => {
    const chain = registryChain('ns', [setPayloadNsServer()]);
    assert.equal((await chain.register(NetworkService.fromPartial({ name: 'a' }), newContext())).payload, 'IP');
    assert.equal((await chain.register(NetworkService.fromPartial({ name: 'b', payload: 'ETHERNET' }), newContext())).payload, 'ETHERNET');
  });

  it('does not mutate the caller object', async () => {
    const chain = registryChain('ns', [setPayloadNsServer()]);
    const ns = NetworkService.fromPartial({ name: 'a' });
    await chain.register(ns, newContext());
    assert.equal(ns.payload, '');
  });
});
