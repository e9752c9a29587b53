import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection, Mechanism } from '../../../api/gen/connection.js';
import { Connection as ConnectionFns } from '../../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../../api/gen/networkservice.js';
import { type NetworkServiceHandler, networkServiceChain } from '../../../core/chain.js';
import { newContext } from '../../../core/context.js';
import { kernelMechanismClient } from '../kernel/index.js';
import { mechanismTranslationClient } from './index.js';

const NSC_MECH: Mechanism = { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1', inodeURL: 'inode://3/4' } };

/** Plays the NSE: records what it got, selects the first preference (or keeps the mechanism) and names it. */
function fakeNse(seen: { requests: NetworkServiceRequest[]; closes: Connection[] }): NetworkServiceHandler {
  return {
    request: async (r) => {
      seen.requests.push(structuredClone(r));
      const m = r.connection!.mechanism ?? { ...r.mechanismPreferences[0], parameters: { ...r.mechanismPreferences[0].parameters, name: 'dataplane--Ab12', inodeURL: 'inode://7/8' } };
      return { ...r.connection!, mechanism: m };
    },
    close: async (c) => void seen.closes.push(structuredClone(c)),
  };
}

function request(): NetworkServiceRequest {
  return {
    connection: ConnectionFns.fromPartial({ id: 'fwd-1', networkService: 'dataplane-interrupt', mechanism: NSC_MECH }),
    mechanismPreferences: [NSC_MECH, { cls: 'LOCAL', type: 'VFIO', parameters: {} }],
  };
}

describe('mechanism translation', () => {
  it('sends only the forwarder preference, returns the NSC mechanism, resends the NSE mechanism, closes with it', async () => {
    const seen = { requests: [] as NetworkServiceRequest[], closes: [] as Connection[] };
    const chain = networkServiceChain('fwd-client', [mechanismTranslationClient(), kernelMechanismClient({}, { generateName: false })], { tail: fakeNse(seen), given: ['state'] });
    const ctx = newContext();

    const conn = await chain.request(request(), ctx);
    assert.deepEqual(seen.requests[0].mechanismPreferences, [{ cls: 'LOCAL', type: 'KERNEL', parameters: {} }]);
    assert.equal(seen.requests[0].connection!.mechanism, undefined);
    assert.deepEqual(conn.mechanism, NSC_MECH);

    const again = await chain.request(request(), ctx);
    assert.deepEqual(seen.requests[1].connection!.mechanism, { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'dataplane--Ab12', inodeURL: 'inode://7/8' } });
    assert.deepEqual(again.mechanism, NSC_MECH);

    await chain.close(again, ctx);
    assert.equal(seen.closes[0].mechanism!.parameters.name, 'dataplane--Ab12');
    // Forgotten after Close: a new request starts from scratch.
    await chain.request(request(), ctx);
    assert.equal(seen.requests[2].connection!.mechanism, undefined);
  });

  it('does not remember anything when the request fails', async () => {
    const ctx = newContext();
    const failing: NetworkServiceHandler = { request: async () => { throw new Error('nse down'); }, close: async () => {} };
    const chain = networkServiceChain('fwd-client', [mechanismTranslationClient()], { tail: failing, given: ['state'] });
    await assert.rejects(chain.request(request(), ctx), /nse down/);
    const seen = { requests: [] as NetworkServiceRequest[], closes: [] as Connection[] };
    await networkServiceChain('fwd-client', [mechanismTranslationClient()], { tail: fakeNse(seen), given: ['state'] }).close(ConnectionFns.fromPartial({ id: 'fwd-1', mechanism: NSC_MECH }), ctx);
    assert.equal(seen.closes[0].mechanism, undefined);
  });
});
