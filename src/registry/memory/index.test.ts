import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { NetworkService } from '../../api/gen/registry.js';
import { storeContract } from '../store-contract.js';
import { memoryRegistryStore } from './index.js';

storeContract('memory', async () => {
  const store = memoryRegistryStore();
  return {
    store,
    listeners: () => store.ns.watcherCount + store.nse.watcherCount,
    cleanup: () => store.close(),
  };
});

describe('memory store specifics', () => {
  it('a watch that falls behind by more than watchLimit ends with ResourceExhaustedError; writers and other watchers go on', async () => {
    const store = memoryRegistryStore({ watchLimit: 2 });
    const ac = new AbortController();
    const slow = store.ns.watch(ac.signal)[Symbol.asyncIterator]();
    const fast = store.ns.watch(ac.signal)[Symbol.asyncIterator]();
    try {
      for (const name of ['a', 'b', 'c']) {
        await store.ns.put(NetworkService.fromPartial({ name }));
        assert.equal((await fast.next()).value?.item.name, name);
      }
      await store.ns.delete('a');
      assert.deepEqual((await fast.next()).value?.type, 'delete');
      await assert.rejects(slow.next(), { name: 'ResourceExhaustedError' });
      assert.equal((await slow.next()).done, true);
      assert.equal(store.ns.watcherCount, 1, 'the slow watcher is unsubscribed');
      assert.equal(getEventListeners(ac.signal, 'abort').length, 1);
    } finally {
      ac.abort();
      await store.close();
    }
    assert.equal(store.ns.watcherCount, 0);
  });
});
