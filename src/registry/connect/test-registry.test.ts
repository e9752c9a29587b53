import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkService } from '../../api/gen/registry.js';
import { newContext } from '../../core/context.js';
import { DEFAULT_QUEUE_LIMIT } from '../../core/queue.js';
import { testRegistryHandlers } from './test-registry.js';

describe('test registry', () => {
  it('a Find watch that falls behind ends with ResourceExhaustedError; registrations go on', async () => {
    const h = testRegistryHandlers();
    const ac = new AbortController();
    try {
      const it = h.ns.find({ networkService: undefined, watch: true }, newContext({ signal: ac.signal }))[Symbol.asyncIterator]();
      const first = it.next(); // the generator subscribes when it starts
      await h.ns.register(NetworkService.fromPartial({ name: 'first' }), newContext());
      assert.equal((await first).value?.networkService?.name, 'first');
      for (let i = 0; i <= DEFAULT_QUEUE_LIMIT; i++) await h.ns.register(NetworkService.fromPartial({ name: `ns-${i}` }), newContext());
      assert.equal(h.nss.size, DEFAULT_QUEUE_LIMIT + 2);
      await assert.rejects(it.next(), { name: 'ResourceExhaustedError' });
    } finally {
      ac.abort();
      h.close();
    }
  });

  it('a Find watch ends cleanly when its call is cancelled', async () => {
    const h = testRegistryHandlers();
    const ac = new AbortController();
    const it = h.ns.find({ networkService: undefined, watch: true }, newContext({ signal: ac.signal }))[Symbol.asyncIterator]();
    const pending = it.next();
    ac.abort();
    assert.equal((await pending).done, true);
    h.close();
  });
});
