import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceQuery,
} from '../../api/gen/registry.js';
import { registryChain } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { memoryRegistryStore } from '../memory/index.js';
import { storeNseServer, storeNsServer } from './index.js';

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const nse = (name: string, services: string[] = ['ns1']) =>
  NetworkServiceEndpoint.fromPartial({ name, url: 'tcp://10.0.0.1:5001', networkServiceNames: services });

describe('store (nse)', () => {
  it('register puts, find lists matches, unregister deletes', async () => {
    const store = memoryRegistryStore();
    const chain = registryChain('nse', [storeNseServer({ store })]);
    assert.deepEqual(await chain.register(nse('a'), newContext()), nse('a'));
    await chain.register(nse('b', ['ns2']), newContext());
    const q = (tmpl: Partial<NetworkServiceEndpoint>) => NetworkServiceEndpointQuery.fromPartial({ networkServiceEndpoint: tmpl });
    assert.deepEqual((await collect(chain.find(q({ networkServiceNames: ['ns2'] }), newContext()))).map((r) => [r.networkServiceEndpoint?.name, r.deleted]), [['b', false]]);
    assert.equal((await collect(chain.find(q({}), newContext()))).length, 2);
    assert.equal((await collect(chain.find(NetworkServiceEndpointQuery.fromPartial({}), newContext()))).length, 2, 'no template = all');
    await chain.unregister(nse('a'), newContext());
    await chain.unregister(nse('missing'), newContext());
    assert.deepEqual((await store.nse.list()).map((x) => x.name), ['b']);
    await store.close();
  });

  it('find with watch: listing, then matching changes, until the signal aborts; no watcher left', async () => {
    const store = memoryRegistryStore();
    const chain = registryChain('nse', [storeNseServer({ store })]);
    await chain.register(nse('a'), newContext());
    const ac = new AbortController();
    const stream = chain.find(NetworkServiceEndpointQuery.fromPartial({ networkServiceEndpoint: { networkServiceNames: ['ns1'] }, watch: true }), newContext({ signal: ac.signal }));
    const it = stream[Symbol.asyncIterator]();
    assert.deepEqual((await it.next()).value, { networkServiceEndpoint: nse('a'), deleted: false });
    await chain.register(nse('other', ['ns2']), newContext()); // does not match
    await chain.register(nse('b'), newContext());
    await chain.unregister(nse('a'), newContext());
    assert.deepEqual((await it.next()).value, { networkServiceEndpoint: nse('b'), deleted: false });
    assert.deepEqual((await it.next()).value, { networkServiceEndpoint: nse('a'), deleted: true });
    const pending = it.next();
    ac.abort();
    assert.equal((await pending).done, true);
    assert.equal(store.nse.watcherCount, 0);
    await store.close();
  });

  it('a consumer that stops during the listing leaves no watcher', async () => {
    const store = memoryRegistryStore();
    const chain = registryChain('nse', [storeNseServer({ store })]);
    await chain.register(nse('a'), newContext());
    await chain.register(nse('b'), newContext());
    for await (const r of chain.find(NetworkServiceEndpointQuery.fromPartial({ watch: true }), newContext())) {
      assert.equal(r.deleted, false);
      break;
    }
    assert.equal(store.nse.watcherCount, 0);
    await store.close();
  });

  it('stop ends open watches', async () => {
    const store = memoryRegistryStore();
    const el = storeNseServer({ store });
    const chain = registryChain('nse', [el]);
    const it = chain.find(NetworkServiceEndpointQuery.fromPartial({ watch: true }), newContext())[Symbol.asyncIterator]();
    const pending = it.next();
    el.stop();
    assert.equal((await pending).done, true);
    assert.equal(store.nse.watcherCount, 0);
    await store.close();
  });
});

describe('store (ns)', () => {
  it('register, find (name substring, payload), watch delete, unregister', async () => {
    const store = memoryRegistryStore();
    const chain = registryChain('ns', [storeNsServer({ store })]);
    await chain.register(NetworkService.fromPartial({ name: 'dataplane-interrupt', payload: 'ETHERNET' }), newContext());
    await chain.register(NetworkService.fromPartial({ name: 'other', payload: 'IP' }), newContext());
    const found = await collect(chain.find(NetworkServiceQuery.fromPartial({ networkService: { name: 'interrupt' } }), newContext()));
    assert.deepEqual(found.map((r) => r.networkService?.name), ['dataplane-interrupt']);
    const byPayload = await collect(chain.find(NetworkServiceQuery.fromPartial({ networkService: { payload: 'IP' } }), newContext()));
    assert.deepEqual(byPayload.map((r) => r.networkService?.name), ['other']);

    const ac = new AbortController();
    const it = chain.find(NetworkServiceQuery.fromPartial({ networkService: { name: 'other' }, watch: true }), newContext({ signal: ac.signal }))[Symbol.asyncIterator]();
    assert.equal((await it.next()).value?.deleted, false);
    await chain.unregister(NetworkService.fromPartial({ name: 'other' }), newContext());
    assert.deepEqual((await it.next()).value, { networkService: NetworkService.fromPartial({ name: 'other', payload: 'IP' }), deleted: true });
    ac.abort();
    assert.equal((await it.next()).done, true);
    assert.equal(store.ns.watcherCount, 0);
    await store.close();
  });
});
