import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NetworkServiceEndpoint, type NetworkServiceEndpointResponse } from '../../api/gen/registry.js';
import { registryChain, type NseHandler } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { ChannelPool } from '../../core/transport.js';
import { nseConnectServer } from '../connect/index.js';
import { startTestRegistry, type TestRegistry } from '../connect/test-registry.js';
import { localBypassServer } from './index.js';
import { INSECURE } from '../../security/tls.js';

const NSMGR_URL = 'tcp://10.0.0.1:5001';

async function collect(it: AsyncIterable<NetworkServiceEndpointResponse>): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  for await (const r of it) out.push([r.networkServiceEndpoint!.name, r.networkServiceEndpoint!.url]);
  return out.sort();
}

describe('local-bypass with a real downstream registry', () => {
  let dir: string;
  let url: string;
  let registry: TestRegistry;
  let pool: ChannelPool;
  let direct: NseHandler;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsm-lb-'));
    url = `unix://${join(dir, 'registry.sock')}`;
    registry = await startTestRegistry(url);
    pool = new ChannelPool(INSECURE);
    direct = registryChain('direct', [nseConnectServer({ pool, url })]);
  });

  after(async () => {
    pool.close();
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers with the nsmgr URL, answers and finds with the local URL, drops stale entries', async () => {
    const chain = registryChain('nsmgr', [localBypassServer({ nsmgrUrl: NSMGR_URL }), nseConnectServer({ pool, url })]);
    const local = NetworkServiceEndpoint.fromPartial({ name: 'local', networkServiceNames: ['svc'], url: 'unix:///run/nse/local.sock' });
    const got = await chain.register(local, newContext());
    assert.equal(got.url, 'unix:///run/nse/local.sock');
    assert.equal(registry.nses.get('local')?.url, NSMGR_URL);

    await direct.register(NetworkServiceEndpoint.fromPartial({ name: 'remote', networkServiceNames: ['svc'], url: 'tcp://10.0.0.2:5001' }), newContext());
    await direct.register(NetworkServiceEndpoint.fromPartial({ name: 'stale', networkServiceNames: ['svc'], url: '10.0.0.1:5001' }), newContext());

    const found = await collect(chain.find({ networkServiceEndpoint: NetworkServiceEndpoint.fromPartial({ networkServiceNames: ['svc'] }), watch: false }, newContext()));
    assert.deepEqual(found, [
      ['local', 'unix:///run/nse/local.sock'],
      ['remote', 'tcp://10.0.0.2:5001'],
    ]);

    await chain.unregister(local, newContext());
    assert.equal(registry.nses.has('local'), false);
    await direct.unregister(NetworkServiceEndpoint.fromPartial({ name: 'remote' }), newContext());
    await direct.unregister(NetworkServiceEndpoint.fromPartial({ name: 'stale' }), newContext());
  });

  it('rewrites watch events and lets deletions through', async () => {
    const chain = registryChain('nsmgr', [localBypassServer({ nsmgrUrl: NSMGR_URL }), nseConnectServer({ pool, url })]);
    const ac = new AbortController();
    const events: string[] = [];
    const watching = (async () => {
      for await (const r of chain.find({ networkServiceEndpoint: NetworkServiceEndpoint.fromPartial({ name: 'w' }), watch: true }, newContext({ signal: ac.signal }))) {
        events.push(`${r.deleted ? 'del' : 'put'} ${r.networkServiceEndpoint!.url}`);
        if (events.length === 2) ac.abort();
      }
    })();
    const finds = registry.calls.finds;
    while (registry.calls.finds === finds) await new Promise((r) => setTimeout(r, 5));
    const nse = NetworkServiceEndpoint.fromPartial({ name: 'w', url: 'unix:///run/nse/w.sock' });
    await chain.register(nse, newContext());
    await chain.unregister(nse, newContext());
    await watching;
    assert.equal(events[0], 'put unix:///run/nse/w.sock');
    assert.match(events[1], /^del /);
  });

  it('keeps the original URL without an nsmgr URL', async () => {
    const chain = registryChain('nsmgr', [localBypassServer(), nseConnectServer({ pool, url })]);
    const nse = NetworkServiceEndpoint.fromPartial({ name: 'k', url: 'unix:///run/nse/k.sock' });
    await chain.register(nse, newContext());
    assert.equal(registry.nses.get('k')?.url, 'unix:///run/nse/k.sock');
    await chain.unregister(nse, newContext());
  });
});
