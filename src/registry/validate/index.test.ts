import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkService, NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { registryChain } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { memoryRegistryStore } from '../memory/index.js';
import { storeNseServer, storeNsServer } from '../store/index.js';
import { validateNseServer, validateNsServer } from './index.js';

function rejectsWith(field: string) {
  return (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    assert.equal(err.name, 'InvalidArgumentError');
    assert.equal(err.field, field);
    return true;
  };
}

describe('validate (nse)', () => {
  const setup = () => {
    const store = memoryRegistryStore();
    const chain = registryChain('nse', [validateNseServer(), storeNseServer({ store })]);
    return { store, chain };
  };

  for (const [what, nse, field] of [
    ['empty name', { name: '', url: 'tcp://1.2.3.4:5' }, 'name'],
    ['blank name', { name: '  ', url: 'tcp://1.2.3.4:5' }, 'name'],
    ['empty url', { name: 'a', url: '' }, 'url'],
    ['http url', { name: 'a', url: 'http://x' }, 'url'],
    ['bare host:port', { name: 'a', url: '1.2.3.4:5001' }, 'url'],
    ['relative unix path', { name: 'a', url: 'unix://relative.sock' }, 'url'],
    ['tcp without port', { name: 'a', url: 'tcp://host' }, 'url'],
  ] as const) {
    it(`rejects ${what} naming ${field}; store unchanged`, async () => {
      const { store, chain } = setup();
      await assert.rejects(chain.register(NetworkServiceEndpoint.fromPartial(nse), newContext()), rejectsWith(field));
      assert.deepEqual(await store.nse.list(), []);
    });
  }

  it('accepts unix:// and tcp:// URLs', async () => {
    const { store, chain } = setup();
    await chain.register(NetworkServiceEndpoint.fromPartial({ name: 'a', url: 'unix:///tmp/a.sock' }), newContext());
    await chain.register(NetworkServiceEndpoint.fromPartial({ name: 'b', url: 'tcp://10.0.0.1:5001' }), newContext());
    assert.equal((await store.nse.list()).length, 2);
  });

  it('unregister needs a name', async () => {
    const { store, chain } = setup();
    await chain.register(NetworkServiceEndpoint.fromPartial({ name: 'a', url: 'tcp://10.0.0.1:5001' }), newContext());
    await assert.rejects(chain.unregister(NetworkServiceEndpoint.fromPartial({ name: '' }), newContext()), rejectsWith('name'));
    assert.equal((await store.nse.list()).length, 1);
  });
});

describe('validate (ns)', () => {
  it('rejects an empty NS name; store unchanged', async () => {
    const store = memoryRegistryStore();
    const chain = registryChain('ns', [validateNsServer(), storeNsServer({ store })]);
    await assert.rejects(chain.register(NetworkService.fromPartial({ payload: 'IP' }), newContext()), rejectsWith('name'));
    await assert.rejects(chain.unregister(NetworkService.fromPartial({}), newContext()), rejectsWith('name'));
    assert.deepEqual(await store.ns.list(), []);
    await chain.register(NetworkService.fromPartial({ name: 'ok' }), newContext());
    assert.equal((await store.ns.list()).length, 1);
  });
});
