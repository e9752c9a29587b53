import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { networkServiceChain, passThrough } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { defaultRequest } from '../../testing/requests.js';
import { beginServer } from '../begin/index.js';
import { updatePathServer } from '../update-path/index.js';
import { CONNECTED_URL } from '../connect/state.js';
import { trimPathServer } from './index.js';

const stale = () =>
  defaultRequest({
    id: 'a',
    pathSegments: [
      { name: 'nsc', id: 'a' },
      { name: 'nse', id: 'b' },
      { name: 'old-1', id: 'c' },
      { name: 'old-2', id: 'd' },
    ],
  });

describe('trim-path server', () => {
  it('drops segments after its own when there is no downstream', async () => {
    const chain = networkServiceChain('t', [updatePathServer({ name: 'nse' }), beginServer(), trimPathServer()]);
    const conn = await chain.request(stale(), newContext());
    assert.deepEqual(conn.path!.pathSegments.map((s) => s.name), ['nsc', 'nse']);
    assert.equal(conn.path!.index, 0);
  });

  it('keeps the path when connect marked a downstream', async () => {
    const chain = networkServiceChain('t', [
      updatePathServer({ name: 'nse' }),
      beginServer(),
      trimPathServer(),
      passThrough('fake-connect', { request: async (req, ctx) => (ctx.state.set(CONNECTED_URL, 'unix:///x'), req.connection!) }),
    ]);
    const conn = await chain.request(stale(), newContext());
    assert.equal(conn.path!.pathSegments.length, 4);
  });

  it('requires begin earlier', () => {
    assert.throws(() => networkServiceChain('t', [trimPathServer()]), { name: 'ChainOrderError' });
  });
});
