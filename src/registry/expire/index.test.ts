import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkServiceEndpoint, NetworkServiceEndpointQuery, type NetworkServiceEndpointResponse } from '../../api/gen/registry.js';
import { registryChain } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { memoryRegistryStore } from '../memory/index.js';
import { storeNseServer } from '../store/index.js';
import { DEFAULT_EXPIRE_PERIOD_MS, expireNseServer } from './index.js';

const PERIOD = 1000;

function setup(options: { expirePeriod?: number } = { expirePeriod: PERIOD }) {
  const clock = new FakeClock();
  const store = memoryRegistryStore();
  const expire = expireNseServer({ clock }, options);
  const storeEl = storeNseServer({ store });
  const chain = registryChain('nse', [expire, storeEl]);
  const watchCtl = new AbortController();
  const stream = chain.find(NetworkServiceEndpointQuery.fromPartial({ networkServiceEndpoint: {}, watch: true }), newContext({ signal: watchCtl.signal }));
  const watch = stream[Symbol.asyncIterator]();
  const events: NetworkServiceEndpointResponse[] = [];
  const pump = (async () => {
    for (;;) {
      const r = await watch.next();
      if (r.done) return;
      events.push(r.value);
    }
  })();
  const teardown = async () => {
    expire.stop();
    watchCtl.abort();
    await pump;
    await store.close();
    assert.equal(clock.pending, 0, 'no timer left');
    assert.equal(store.nse.watcherCount, 0, 'no watcher left');
  };
  return { clock, store, expire, chain, events, teardown };
}

const nse = (name: string, patch: Partial<NetworkServiceEndpoint> = {}) =>
  NetworkServiceEndpoint.fromPartial({ name, url: 'tcp://10.0.0.1:5001', networkServiceNames: ['ns'], ...patch });

describe('expire (nse)', () => {
  it('defaults to one minute', async () => {
    const t = setup({});
    const resp = await t.chain.register(nse('a'), newContext());
    assert.equal(DEFAULT_EXPIRE_PERIOD_MS, 60_000);
    assert.equal(resp.expirationTime?.getTime(), t.clock.now() + 60_000);
    await t.teardown();
  });

  it('sets expiration_time, removes the NSE when it passes, watchers see deleted', async () => {
    const t = setup();
    const t0 = t.clock.now();
    const resp = await t.chain.register(nse('a'), newContext());
    assert.equal(resp.expirationTime?.getTime(), t0 + PERIOD);
    assert.equal((await t.store.nse.get('a'))?.expirationTime?.getTime(), t0 + PERIOD, 'stored with its expiration');
    await t.clock.advance(PERIOD - 1);
    assert.ok(await t.store.nse.get('a'));
    await t.clock.advance(1);
    assert.equal(await t.store.nse.get('a'), undefined);
    assert.deepEqual(
      t.events.map((e) => [e.networkServiceEndpoint?.name, e.deleted]),
      [['a', false], ['a', true]],
    );
    assert.equal(t.expire.pending, 0);
    await t.teardown();
  });

  it('a re-Register extends the expiration (also when it echoes the old one)', async () => {
    const t = setup();
    const t0 = t.clock.now();
    const first = await t.chain.register(nse('a'), newContext());
    await t.clock.advance(600);
    const second = await t.chain.register(first, newContext());
    assert.equal(second.expirationTime?.getTime(), t0 + 600 + PERIOD);
    await t.clock.advance(600); // past the first expiration
    assert.ok(await t.store.nse.get('a'), 'still registered');
    await t.clock.advance(400);
    assert.equal(await t.store.nse.get('a'), undefined);
    await t.teardown();
  });

  it('honours an earlier future expiration set by the caller', async () => {
    const t = setup();
    const at = t.clock.now() + 300;
    const resp = await t.chain.register(nse('a', { expirationTime: new Date(at) }), newContext());
    assert.equal(resp.expirationTime?.getTime(), at);
    await t.clock.advance(300);
    assert.equal(await t.store.nse.get('a'), undefined);
    await t.teardown();
  });

  it('ignores a past or later caller expiration', async () => {
    const t = setup();
    const now = t.clock.now();
    const past = await t.chain.register(nse('a', { expirationTime: new Date(now - 5) }), newContext());
    assert.equal(past.expirationTime?.getTime(), now + PERIOD);
    const later = await t.chain.register(nse('b', { expirationTime: new Date(now + 10 * PERIOD) }), newContext());
    assert.equal(later.expirationTime?.getTime(), now + PERIOD);
    await t.teardown();
  });

  it('unregister cancels the timer', async () => {
    const t = setup();
    await t.chain.register(nse('a'), newContext());
    assert.equal(t.clock.pending, 1);
    await t.chain.unregister(nse('a'), newContext());
    assert.equal(t.clock.pending, 0);
    assert.equal(t.expire.pending, 0);
    await t.teardown();
  });

  it('stop cancels every timer and later registers arm none', async () => {
    const t = setup();
    await t.chain.register(nse('a'), newContext());
    await t.chain.register(nse('b'), newContext());
    assert.equal(t.clock.pending, 2);
    t.expire.stop();
    assert.equal(t.clock.pending, 0);
    await t.chain.register(nse('c'), newContext());
    assert.equal(t.clock.pending, 0);
    await t.clock.advance(10 * PERIOD);
    assert.equal((await t.store.nse.list()).length, 3, 'nothing expires after stop');
    await t.teardown();
  });
});
