import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { networkServiceChain } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { count } from '../../testing/count.js';
import { injectError } from '../../testing/inject-error.js';
import { defaultRequest } from '../../testing/requests.js';
import { beginServer } from '../begin/index.js';
import { updatePathServer } from '../update-path/index.js';
import { timeoutServer } from './index.js';

function setup(opts: { failRequests?: number[] } = {}) {
  const clock = new FakeClock();
  const counter = count();
  const begin = beginServer();
  const chain = networkServiceChain('t', [
    updatePathServer({ name: 'nse' }),
    begin,
    timeoutServer({ clock }, { requestTimeout: 15_000 }),
    injectError({ requests: opts.failRequests ?? [] }),
    counter,
  ]);
  const req = (expiresIn: number) =>
    defaultRequest({ id: 'a', pathSegments: [{ name: 'nsc', id: 'a', expires: new Date(clock.now() + expiresIn) }] });
  return { clock, counter, begin, chain, req };
}

describe('timeout server', () => {
  it('closes a connection whose previous segment expired (minus the request timeout)', async () => {
    const { clock, counter, begin, chain, req } = setup();
    await chain.request(req(60_000), newContext());
    await clock.advance(44_999);
    assert.equal(counter.closes, 0);
    await clock.advance(1);
    assert.equal(counter.closes, 1);
    assert.equal(begin.size, 0);
    assert.equal(clock.pending, 0);
  });

  it('a refresh postpones the Close; a failed refresh keeps the old timer', async () => {
    const { clock, counter, chain, req } = setup({ failRequests: [2] });
    const conn = await chain.request(req(60_000), newContext());
    await clock.advance(30_000);
    conn.path!.pathSegments[0].expires = new Date(clock.now() + 60_000);
    await chain.request({ ...req(0), connection: conn }, newContext());
    await clock.advance(30_000); // t=60s: old deadline (45s) passed, new one is 75s
    assert.equal(counter.closes, 0);
    conn.path!.pathSegments[0].expires = new Date(clock.now() + 600_000);
    await assert.rejects(chain.request({ ...req(0), connection: conn }, newContext()), { name: 'UnavailableError' });
    await clock.advance(15_000); // t=75s
    assert.equal(counter.closes, 1);
  });

  it('Close cancels the timer; connections without expiry get none', async () => {
    const { clock, counter, chain, req } = setup();
    const conn = await chain.request(req(60_000), newContext());
    assert.equal(clock.pending, 1);
    await chain.close(conn, newContext());
    assert.equal(clock.pending, 0);
    assert.equal(counter.closes, 1);
    await chain.request(defaultRequest({ id: 'b', pathSegments: [{ name: 'nsc', id: 'b' }] }), newContext());
    assert.equal(clock.pending, 0);
  });

  it('a reselect (state dropped by begin) cancels the old timer', async () => {
    const { clock, chain, req } = setup();
    const conn = await chain.request(req(60_000), newContext());
    await chain.request({ ...req(60_000), connection: { ...conn, state: 3 /* RESELECT_REQUESTED */ } }, newContext());
    assert.equal(clock.pending, 1);
  });
});
