import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NetworkServiceEndpoint, NetworkServiceEndpointRegistryDefinition, NetworkServiceRegistryDefinition } from '../api/gen/registry.js';
import { newContext } from '../core/context.js';
import { nseRegistryService, nsRegistryService } from '../core/edge.js';
import { silentLogger } from '../core/log.js';
import { ChannelPool, serve } from '../core/transport.js';
import { nseRegistryClient, startRegistration } from './client/index.js';
import { startTestRegistry } from './connect/test-registry.js';
import { nsmgrRegistryChains } from './nsmgr-chain.js';
import { INSECURE } from '../security/tls.js';

describe('nsmgr registry chain', () => {
  it('an NSE registers through a served nsmgr chain: labels, capped expiry, nsmgr URL, local URL on Find', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nsm-nsmgr-'));
    const registryUrl = `unix://${join(dir, 'registry.sock')}`;
    const nsmgrSock = `unix://${join(dir, 'nsmgr.sock')}`;
    const pool = new ChannelPool(INSECURE);
    const registry = await startTestRegistry(registryUrl);
    const chains = nsmgrRegistryChains(
      { registryUrl, pool, nsmgrUrl: 'tcp://10.0.0.1:5001', labels: { nodeName: 'node-1', podName: 'nsmgr-1', clusterName: 'c' }, log: silentLogger, insecure: true },
      { maxExpiration: 30_000 },
    );
    const nsmgr = await serve(
      [nsmgrSock],
      [
        { definition: NetworkServiceEndpointRegistryDefinition, implementation: nseRegistryService(chains.nse, silentLogger) },
        { definition: NetworkServiceRegistryDefinition, implementation: nsRegistryService(chains.ns, silentLogger) },
      ],
      INSECURE,
    );
    const reg = startRegistration({
      nse: NetworkServiceEndpoint.fromPartial({ name: 'nse-1', networkServiceNames: ['svc'], networkServiceLabels: { svc: { labels: { app: 'x' } } }, url: 'unix:///run/nse-1.sock' }),
      client: (signal) => nseRegistryClient({ pool, url: nsmgrSock, signal }),
    });
    try {
      const got = await reg.registered;
      assert.equal(got.url, 'unix:///run/nse-1.sock');
      const stored = registry.nses.get('nse-1')!;
      assert.equal(stored.url, 'tcp://10.0.0.1:5001');
      assert.deepEqual(stored.networkServiceLabels.svc.labels, { app: 'x', nodeName: 'node-1', podName: 'nsmgr-1', clusterName: 'c' });
      const left = stored.expirationTime!.getTime() - Date.now();
      assert.ok(left > 25_000 && left <= 30_000, `expiry capped (${left} ms left)`);

      const found = [];
      for await (const r of chains.nse.find({ networkServiceEndpoint: NetworkServiceEndpoint.fromPartial({ name: 'nse-1' }), watch: false }, newContext())) found.push(r.networkServiceEndpoint!.url);
      assert.deepEqual(found, ['unix:///run/nse-1.sock']);

      const ns = await chains.ns.register({ name: 'svc', payload: 'ETHERNET', matches: [], pathIds: [] }, newContext());
      assert.equal(ns.payload, 'ETHERNET');
      assert.ok(registry.nss.has('svc'));
    } finally {
      await reg.stop();
      assert.equal(registry.nses.has('nse-1'), false);
      await nsmgr.stop({ force: true });
      pool.close();
      await registry.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
