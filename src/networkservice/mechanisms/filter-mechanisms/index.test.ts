import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, type Mechanism } from '../../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../../api/gen/networkservice.js';
import { networkServiceChain } from '../../../core/chain.js';
import { newContext } from '../../../core/context.js';
import { InvalidArgumentError } from '../../../core/errors.js';
import { CLIENT_URL } from '../../client-url/index.js';
import { OFFERED_MECHANISMS, filterMechanismsClient } from './index.js';

const PREFS: Mechanism[] = [
  { cls: 'LOCAL', type: 'KERNEL', parameters: {} },
  { cls: 'REMOTE', type: 'VXLAN', parameters: { src_ip: '10.0.0.1' } },
  { cls: 'REMOTE', type: 'WIREGUARD', parameters: {} },
];

describe('filter-mechanisms client', () => {
  it('keeps LOCAL for unix/inode next hops and REMOTE for tcp, and records what it offered', async () => {
    const table: Array<[string, string[]]> = [
      ['unix:///var/lib/networkservicemesh/nse.sock', ['KERNEL']],
      ['inode://3/4242', ['KERNEL']],
      ['tcp://10.0.0.2:5001', ['VXLAN', 'WIREGUARD']],
    ];
    for (const [url, want] of table) {
      let sent: string[] = [];
      const chain = networkServiceChain('t', [filterMechanismsClient()], {
        given: ['state'],
        tail: { request: async (r) => ((sent = r.mechanismPreferences.map((m) => m.type)), r.connection!), close: async () => undefined },
      });
      const ctx = newContext();
      ctx.state.set(CLIENT_URL, url);
      const r: NetworkServiceRequest = { connection: Connection.fromPartial({ id: 'c1' }), mechanismPreferences: structuredClone(PREFS) };
      await chain.request(r, ctx);
      assert.deepEqual(sent, want, url);
      assert.deepEqual(ctx.state.get(OFFERED_MECHANISMS), want);
    }
  });

  it('nothing left to offer is an InvalidArgument naming mechanism_preferences, before anything is sent', async () => {
    let calls = 0;
    const chain = networkServiceChain('t', [filterMechanismsClient()], { given: ['state'], tail: { request: async (r) => (calls++, r.connection!), close: async () => undefined } });
    const ctx = newContext();
    ctx.state.set(CLIENT_URL, 'tcp://10.0.0.2:5001');
    const r: NetworkServiceRequest = { connection: Connection.fromPartial({ id: 'c1', payload: 'ETHERNET' }), mechanismPreferences: [PREFS[0]!] };
    await assert.rejects(chain.request(r, ctx), (e: Error) => e instanceof InvalidArgumentError && e.field === 'mechanism_preferences' && /no REMOTE mechanism/.test(e.message));
    assert.equal(calls, 0);
  });
});
