import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection } from '../../api/gen/connection.js';
import { networkServiceChain, passThrough, type NetworkServiceElement } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { silentLogger } from '../../core/log.js';
import { count } from '../../testing/count.js';
import { injectError } from '../../testing/inject-error.js';
import { defaultRequest } from '../../testing/requests.js';
import { beginClient } from '../begin/index.js';
import { DEFAULT_REFRESH_RETRY_INTERVAL, refreshAfter, refreshClient } from './index.js';

const TOKEN_LIFETIME = 60_000;

/** Stands in for the next hops: every Request that reaches it issues a fresh token (expires = now + 60 s). */
function issueTokens(clock: FakeClock, issuedAt: number[]): NetworkServiceElement {
  return passThrough('issue-tokens', {
    async request(req, ctx, next) {
      issuedAt.push(clock.now());
      const conn: Connection = await next.request(req, ctx);
      for (const s of conn.path?.pathSegments ?? []) s.expires = new Date(clock.now() + TOKEN_LIFETIME);
      return conn;
    },
  });
}

function setup(opts: { failRequests?: number[] } = {}) {
  const clock = new FakeClock();
  const issuedAt: number[] = [];
  const counter = count();
  const chain = networkServiceChain('t', [
    beginClient(),
    refreshClient({ log: silentLogger, clock }),
    injectError({ requests: opts.failRequests ?? [] }),
    issueTokens(clock, issuedAt),
    counter,
  ]);
  const req = () => defaultRequest({ id: 'c1', pathSegments: [{ name: 'nsc', id: 'c1' }] });
  return { clock, counter, chain, req, issuedAt };
}

describe('refreshAfter', () => {
  it('is a third of the shortest token lifetime on a one-segment path, 0.2 + 0.2·index/len of it on longer ones', () => {
    const now = 1_000_000;
    const seg = (name: string, inMs: number) => ({ name, id: name, expires: new Date(now + inMs), token: '', metrics: {} });
    assert.equal(refreshAfter({ path: { index: 0, pathSegments: [seg('a', 60_000)] } } as unknown as Connection, now), 20_000);
    const three = { index: 0, pathSegments: [seg('a', 60_000), seg('b', 30_000), seg('c', 90_000)] };
    assert.equal(refreshAfter({ path: three } as unknown as Connection, now), 6_000);
    assert.equal(refreshAfter({ path: { ...three, index: 1 } } as unknown as Connection, now), 8_000);
  });

  it('is 0 (at once) when no segment expires or a token has already expired', () => {
    const now = 1_000_000;
    assert.equal(refreshAfter({ path: { index: 0, pathSegments: [{ name: 'a', id: 'a' }] } } as unknown as Connection, now), 0);
    assert.equal(refreshAfter({ path: { index: 0, pathSegments: [{ name: 'a', id: 'a', expires: new Date(now - 1) }] } } as unknown as Connection, now), 0);
  });
});

describe('refresh client', () => {
  it('re-Requests before the token expires, every time, with one timer pending', async () => {
    const { clock, chain, req, issuedAt } = setup();
    await chain.request(req(), newContext());
    assert.equal(clock.pending, 1);
    await clock.advance(19_999);
    assert.equal(issuedAt.length, 1, 'not before a third of the lifetime');
    await clock.advance(1);
    assert.equal(issuedAt.length, 2);
    await clock.advance(40_000);
    assert.deepEqual(
      issuedAt.map((t) => t - issuedAt[0]),
      [0, 20_000, 40_000, 60_000],
    );
    for (let i = 1; i < issuedAt.length; i++) assert.ok(issuedAt[i] < issuedAt[i - 1] + TOKEN_LIFETIME, 'each refresh comes before the previous token expires');
    assert.equal(clock.pending, 1);
  });

  it('a new Request reschedules: the old timer is cancelled', async () => {
    const { clock, chain, req, issuedAt } = setup();
    const conn = await chain.request(req(), newContext());
    await clock.advance(10_000);
    await chain.request({ ...req(), connection: conn }, newContext());
    assert.equal(clock.pending, 1);
    await clock.advance(19_999);
    assert.equal(issuedAt.length, 2, 'the first timer (due at 20 s) did not fire');
    await clock.advance(1);
    assert.equal(issuedAt.length, 3);
  });

  it('a failed refresh is retried every retry interval until it succeeds', async () => {
    const { clock, chain, req, issuedAt, counter } = setup({ failRequests: [1, 2] });
    await chain.request(req(), newContext());
    await clock.advance(20_000);
    assert.equal(issuedAt.length, 1, 'the refresh at 20 s failed before reaching the next hop');
    await clock.advance(DEFAULT_REFRESH_RETRY_INTERVAL);
    assert.equal(issuedAt.length, 1, 'the first retry failed too');
    await clock.advance(DEFAULT_REFRESH_RETRY_INTERVAL);
    assert.deepEqual(
      issuedAt.map((t) => t - issuedAt[0]),
      [0, 20_000 + 2 * DEFAULT_REFRESH_RETRY_INTERVAL],
    );
    assert.equal(counter.requests, 2);
    assert.equal(clock.pending, 1, 'back to one refresh timer');
  });

  it('Close stops refreshing: no timer left, no refresh afterwards', async () => {
    const { clock, chain, req, counter } = setup();
    const conn = await chain.request(req(), newContext());
    await clock.advance(20_000);
    assert.equal(counter.requests, 2);
    await chain.close(conn, newContext());
    assert.equal(clock.pending, 0);
    await clock.advance(10 * TOKEN_LIFETIME);
    assert.equal(counter.requests, 2);
    assert.equal(counter.closes, 1);
  });

  it('Close while a failed refresh waits for its retry: the retry never comes', async () => {
    const { clock, chain, req, counter } = setup({ failRequests: [1] });
    const conn = await chain.request(req(), newContext());
    await clock.advance(20_000);
    assert.equal(clock.pending, 1, 'the retry is scheduled');
    await chain.close(conn, newContext());
    assert.equal(clock.pending, 0);
    await clock.advance(10 * TOKEN_LIFETIME);
    assert.equal(counter.requests, 1);
  });

  it('a connection whose Request fails gets no refresh', async () => {
    const { clock, chain, req } = setup({ failRequests: [0] });
    await assert.rejects(chain.request(req(), newContext()), { name: 'UnavailableError' });
    assert.equal(clock.pending, 0);
  });
});
