import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { registryChain, type NseHandler } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import { ChannelPool } from '../../core/transport.js';
import { nsConnectClient, nseConnectClient, nseConnectServer } from './index.js';
import { startTestRegistry, testRegistryHandlers, type TestRegistry } from './test-registry.js';
import { INSECURE } from '../../security/tls.js';

describe('connect', () => {
  let dir: string;
  let url: string;
  let registry: TestRegistry;
  let pool: ChannelPool;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsm-connect-'));
    url = `unix://${join(dir, 'registry.sock')}`;
    registry = await startTestRegistry(url);
    pool = new ChannelPool(INSECURE);
  });

  after(async () => {
    pool.close();
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers, finds and unregisters an NSE over gRPC', async () => {
    const chain = registryChain('t', [nseConnectClient({ pool, url })]);
    const nse = NetworkServiceEndpoint.fromPartial({ name: 'nse-1', networkServiceNames: ['svc'], url: 'unix:///tmp/nse-1.sock' });
    const got = await chain.register(nse, newContext());
    assert.equal(got.name, 'nse-1');
    assert.ok(got.initialRegistrationTime instanceof Date);
    assert.equal(registry.nses.get('nse-1')?.url, 'unix:///tmp/nse-1.sock');

    const found = [];
    for await (const r of chain.find({ networkServiceEndpoint: NetworkServiceEndpoint.fromPartial({ name: 'nse-1' }), watch: false }, newContext())) {
      found.push(r);
    }
    assert.equal(found.length, 1);
    assert.equal(found[0].networkServiceEndpoint?.url, 'unix:///tmp/nse-1.sock');

    await chain.unregister(got, newContext());
    assert.equal(registry.nses.has('nse-1'), false);
  });

  it('registers an NS', async () => {
    const chain = registryChain('t', [nsConnectClient({ pool, url })]);
    const got = await chain.register({ name: 'ns-1', payload: '', matches: [], pathIds: [] }, newContext());
    assert.equal(got.payload, 'IP');
    await chain.unregister(got, newContext());
    assert.equal(registry.nss.size, 0);
  });

  it('passes a watch stream through and ends it quietly when the context is cancelled', async () => {
    const chain = registryChain('t', [nseConnectServer({ pool, url })]);
    const ac = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (const r of chain.find({ networkServiceEndpoint: NetworkServiceEndpoint.fromPartial({ name: 'w' }), watch: true }, newContext({ signal: ac.signal }))) {
        seen.push(`${r.networkServiceEndpoint?.name}:${r.deleted}`);
        if (seen.length === 2) ac.abort();
      }
    })();
    // Wait for the watch to be established before registering.
    while (registry.calls.finds < 2) await new Promise((r) => setTimeout(r, 5));
    const nse = NetworkServiceEndpoint.fromPartial({ name: 'w', url: 'tcp://1.2.3.4:5' });
    await chain.register(nse, newContext());
    await chain.unregister(nse, newContext());
    await done;
    assert.deepEqual(seen, ['w:false', 'w:true']);
  });

  it('maps gRPC errors back to nsm-ts error classes', async () => {
    const h = testRegistryHandlers();
    const failing: NseHandler = {
      ...h.nse,
      register: async () => {
        throw new InvalidArgumentError('url', 'x', 'bad url');
      },
      // eslint-disable-next-line require-yield -- a stream that fails before its first item
      async *find() {
        throw new NotFoundError('nothing');
      },
    };
    const url2 = `unix://${join(dir, 'failing.sock')}`;
    const r2 = await startTestRegistry(url2, { nse: failing });
    try {
      const chain = registryChain('t', [nseConnectClient({ pool, url: url2 })]);
      await assert.rejects(chain.register(NetworkServiceEndpoint.fromPartial({ name: 'x' }), newContext()), { name: 'InvalidArgumentError' });
      await assert.rejects(async () => {
        for await (const _ of chain.find({ networkServiceEndpoint: undefined, watch: false }, newContext())) void _;
      }, { name: 'NotFoundError' });
    } finally {
      await r2.stop();
    }
  });

  it('fails with UnavailableError when the registry is not there', async () => {
    const chain = registryChain('t', [nseConnectClient({ pool, url: `unix://${join(dir, 'nobody.sock')}` }, { dialTimeout: 100 })]);
    await assert.rejects(chain.register(NetworkServiceEndpoint.fromPartial({ name: 'x' }), newContext()), { name: 'UnavailableError' });
    await assert.rejects(async () => {
      for await (const _ of chain.find({ networkServiceEndpoint: undefined, watch: true }, newContext())) void _;
    }, { name: 'UnavailableError' });
  });

  it('rejects a bad URL when the element is built', () => {
    assert.throws(() => nseConnectClient({ pool, url: 'http://x' }), { name: 'InvalidArgumentError' });
  });

  it('turns a cancelled context into CancelledError', async () => {
    const chain = registryChain('t', [nseConnectClient({ pool, url })]);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(chain.register(NetworkServiceEndpoint.fromPartial({ name: 'x' }), newContext({ signal: ac.signal })), { name: 'CancelledError' });
  });
});
