import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { registryChain, type NseHandler } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { clientInfoServer } from './index.js';

describe('client-info', () => {
  it('adds the nsmgr labels to every service label set without overwriting', async () => {
    let seen: NetworkServiceEndpoint | undefined;
    const tail: NseHandler = { register: async (x) => (seen = x), find: async function* () {}, unregister: async () => {} };
    const chain = registryChain('t', [clientInfoServer({ labels: { nodeName: 'node-1', podName: 'nsmgr-x', clusterName: '' } })], { tail });
    const nse = NetworkServiceEndpoint.fromPartial({
      name: 'fwd',
      networkServiceNames: ['forwarder', 'other'],
      networkServiceLabels: { forwarder: { labels: { p2p: 'true', nodeName: 'mine' } }, extra: { labels: {} } },
    });
    await chain.register(nse, newContext());
    assert.deepEqual(seen?.networkServiceLabels, {
      forwarder: { labels: { p2p: 'true', nodeName: 'mine', podName: 'nsmgr-x' } },
      other: { labels: { nodeName: 'node-1', podName: 'nsmgr-x' } },
      extra: { labels: { nodeName: 'node-1', podName: 'nsmgr-x' } },
    });
    // The caller's object is not changed.
    assert.deepEqual(nse.networkServiceLabels.forwarder.labels, { p2p: 'true', nodeName: 'mine' });
  });
});
