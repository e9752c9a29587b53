import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { registryChain } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { setRegistrationTimeNseServer } from './index.js';

describe('set-registration-time', () => {
  it('sets the time on first register and keeps it on re-register', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    const chain = registryChain('nse', [setRegistrationTimeNseServer({ clock })]);
    const nse = NetworkServiceEndpoint.fromPartial({ name: 'a', url: 'tcp://1.1.1.1:1' });
    const first = await chain.register(nse, newContext());
    assert.equal(first.initialRegistrationTime?.getTime(), t0);
    assert.equal(nse.initialRegistrationTime, undefined, 'caller object untouched');

    await clock.advance(5000);
    // a refresh without the time (e.g. a client that rebuilds the NSE) keeps the remembered time
    assert.equal((await chain.register(nse, newContext())).initialRegistrationTime?.getTime(), t0);
    // a refresh echoing the time it got back keeps it
    assert.equal((await chain.register(first, newContext())).initialRegistrationTime?.getTime(), t0);
  });

  it('forgets the name on unregister', async () => {
    const clock = new FakeClock();
    const chain = registryChain('nse', [setRegistrationTimeNseServer({ clock })]);
    const nse = NetworkServiceEndpoint.fromPartial({ name: 'a', url: 'tcp://1.1.1.1:1' });
    await chain.register(nse, newContext());
    await chain.unregister(nse, newContext());
    await clock.advance(1000);
    assert.equal((await chain.register(nse, newContext())).initialRegistrationTime?.getTime(), clock.now());
  });
});
