import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { registryChain, type NseHandler } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { DEFAULT_MAX_EXPIRATION_MS, expireCapServer } from './index.js';

describe('expire-cap', () => {
  const setup = (maxExpiration?: number) => {
    const clock = new FakeClock();
    const seen: NetworkServiceEndpoint[] = [];
    const tail: NseHandler = { register: async (x) => (seen.push(x), x), find: async function* () {}, unregister: async () => {} };
    return { clock, seen, chain: registryChain('t', [expireCapServer({ clock }, { maxExpiration })], { tail }) };
  };

  it('sets now + 1 min when no expiration is given', async () => {
    const { clock, chain } = setup();
    const got = await chain.register(NetworkServiceEndpoint.fromPartial({ name: 'a' }), newContext());
    assert.equal(got.expirationTime?.getTime(), clock.now() + DEFAULT_MAX_EXPIRATION_MS);
  });

  it('caps a later expiration and keeps an earlier one', async () => {
    const { clock, chain } = setup(10_000);
    const late = await chain.register(NetworkServiceEndpoint.fromPartial({ name: 'a', expirationTime: new Date(clock.now() + 3_600_000) }), newContext());
    assert.equal(late.expirationTime?.getTime(), clock.now() + 10_000);
    const early = await chain.register(NetworkServiceEndpoint.fromPartial({ name: 'a', expirationTime: new Date(clock.now() + 5_000) }), newContext());
    assert.equal(early.expirationTime?.getTime(), clock.now() + 5_000);
  });

  it('rejects a non-positive cap', () => {
    assert.throws(() => expireCapServer({}, { maxExpiration: 0 }), { name: 'InvalidArgumentError' });
  });
});
