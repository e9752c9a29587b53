import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import { networkServiceChain } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { clientInfo, clientInfoLabels } from './index.js';

describe('client-info', () => {
  it('adds nodeName/podName/clusterName, skipping empty values and keeping other labels', async () => {
    const chain = networkServiceChain('t', [clientInfo({ nodeName: 'node-1', podName: 'nsc-pod', clusterName: '' })]);
    const conn = await chain.request(
      { connection: ConnectionFns.fromPartial({ id: 'c1', labels: { app: 'x', nodeName: 'stale' } }), mechanismPreferences: [] },
      newContext(),
    );
    assert.deepEqual(conn.labels, { app: 'x', nodeName: 'node-1', podName: 'nsc-pod' });
  });

  it('does nothing without values; labels helper matches', async () => {
    const conn = await networkServiceChain('t', [clientInfo()]).request(
      { connection: ConnectionFns.fromPartial({ id: 'c1' }), mechanismPreferences: [] },
      newContext(),
    );
    assert.deepEqual(conn.labels, {});
    assert.deepEqual(clientInfoLabels({ clusterName: 'k' }), { clusterName: 'k' });
  });
});
