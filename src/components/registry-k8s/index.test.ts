import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { createChannel, createClient } from 'nice-grpc';
import { NetworkServiceEndpointRegistryDefinition, NetworkServiceRegistryDefinition } from '../../api/gen/registry.js';
import { silentLogger } from '../../core/log.js';
import { startTestApiServer } from '../../testing/fake-apiserver.js';
import { registryK8sConfig } from './config.js';
import { startRegistryK8s } from './index.js';

describe('registry-k8s config', () => {
  it('defaults follow upstream cmd-registry-k8s', () => {
    const c = registryK8sConfig.parse({ NSM_INSECURE: 'true' });
    assert.equal(c.namespace, 'default');
    assert.equal(c.expirePeriod, 60_000);
    assert.deepEqual(c.listenOn, ['unix:///listen.on.socket']);
    assert.equal(c.kubeconfig, '');
  });

  it('rejects a bad namespace naming the variable', () => {
    assert.throws(() => registryK8sConfig.parse({ NSM_INSECURE: 'true', NSM_NAMESPACE: 'Bad_NS' }), (err: Error & { variable?: string }) => err.name === 'ConfigError' && err.variable === 'NSM_NAMESPACE');
  });
});

describe('nsm registry-k8s on the test API server, not a real cluster', () => {
  it('serves Register/Find over gRPC with NSEs and NSs stored as custom resources in NSM_NAMESPACE', async () => {
    const api = await startTestApiServer();
    const dir = mkdtempSync(join(tmpdir(), 'nsmt-regk8s-'));
    const sock = join(dir, 'registry.sock');
    const kc = new KubeConfig();
    kc.loadFromString(api.kubeconfig());
    const config = registryK8sConfig.parse({ NSM_INSECURE: 'true', NSM_LISTEN_ON: `unix://${sock}`, NSM_NAMESPACE: 'nsm-system' });
    const registry = await startRegistryK8s(config, { log: silentLogger, kubeConfig: kc });
    const channel = createChannel(`unix://${sock}`);
    try {
      const nsClient = createClient(NetworkServiceRegistryDefinition, channel);
      const nseClient = createClient(NetworkServiceEndpointRegistryDefinition, channel);
      await nsClient.register({ name: 'dataplane-interrupt', payload: 'ETHERNET' });
      const reg = await nseClient.register({ name: 'nse-kernel-1', networkServiceNames: ['dataplane-interrupt'], url: 'tcp://10.0.0.7:5003' });
      assert.ok(reg.expirationTime, 'the registry set an expiration time');

      const [nsCr] = api.objects('networkservices');
      assert.equal(nsCr.metadata.namespace, 'nsm-system');
      assert.equal(nsCr.spec.payload, 'ETHERNET');
      const [nseCr] = api.objects('networkserviceendpoints');
      assert.equal(nseCr.metadata.name, 'nse-kernel-1');
      assert.deepEqual(nseCr.spec.network_service_names, ['dataplane-interrupt']);
      assert.equal(typeof nseCr.spec.expiration_time.seconds, 'number');

      const found = [];
      for await (const r of nseClient.find({ networkServiceEndpoint: { networkServiceNames: ['dataplane-interrupt'] } })) found.push(r.networkServiceEndpoint?.name);
      assert.deepEqual(found, ['nse-kernel-1']);

      await nseClient.unregister({ name: 'nse-kernel-1' });
      assert.deepEqual(api.objects('networkserviceendpoints'), []);
    } finally {
      channel.close();
      await registry.stop();
      await api.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
