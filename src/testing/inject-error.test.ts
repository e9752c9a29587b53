import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { networkServiceChain } from '../core/chain.js';
import { newContext } from '../core/context.js';
import { InvalidArgumentError } from '../core/errors.js';
import { count } from './count.js';
import { ALWAYS, injectError } from './inject-error.js';
import { defaultRequest } from './requests.js';

describe('test elements', () => {
  it('injectError fails the listed calls (0-based) and count counts what passed', async () => {
    const c = count();
    const chain = networkServiceChain('t', [injectError({ requests: [1, 2], closes: ALWAYS }), c]);
    const ctx = newContext();
    const a = defaultRequest({ id: 'a' });
    await chain.request(a, ctx);
    await assert.rejects(chain.request(a, ctx), { name: 'UnavailableError' });
    await assert.rejects(chain.request(a, ctx), { name: 'UnavailableError' });
    await chain.request(a, ctx);
    await chain.request(defaultRequest({ id: 'b' }), ctx);
    await assert.rejects(chain.close(a.connection!, ctx), { name: 'UnavailableError' });
    assert.deepEqual([c.requests, c.uniqueRequests, c.closes, c.uniqueCloses], [3, 2, 0, 0]);
  });

  it('injectError takes a predicate and a custom error', async () => {
    const chain = networkServiceChain('t', [
      injectError({ requests: (_n, req) => req.connection!.id === 'bad', error: () => new InvalidArgumentError('x', 1, 'no') }),
    ]);
    await chain.request(defaultRequest({ id: 'good' }), newContext());
    await assert.rejects(chain.request(defaultRequest({ id: 'bad' }), newContext()), { name: 'InvalidArgumentError' });
  });

  it('defaultRequest is the sdk default', () => {
    const r = defaultRequest({ id: 'x', networkService: 'svc' });
    assert.equal(r.connection!.id, 'x');
    assert.equal(r.connection!.networkService, 'svc');
    assert.deepEqual(r.mechanismPreferences.map((m) => [m.cls, m.type]), [['LOCAL', 'KERNEL']]);
  });
});
