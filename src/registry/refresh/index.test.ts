import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { registryChain, type NseHandler } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { UnavailableError } from '../../core/errors.js';
import { Backoff, nseRefreshClient } from './index.js';

/** A fake registry tail: records registrations, answers with expiration = now + ttl, can fail. */
function fakeRegistry(clock: FakeClock, ttl = 60_000) {
  const calls: Array<{ at: number; op: string; item: NetworkServiceEndpoint }> = [];
  let failing = false;
  const tail: NseHandler = {
    async register(item) {
      calls.push({ at: clock.now(), op: 'register', item });
      if (failing) throw new UnavailableError('registry down');
      const cap = clock.now() + ttl;
      const given = item.expirationTime?.getTime();
      return { ...item, expirationTime: new Date(given !== undefined && given < cap ? given : cap) };
    },
    find: async function* () {},
    async unregister(item) {
      calls.push({ at: clock.now(), op: 'unregister', item });
    },
  };
  return {
    tail,
    calls,
    setFailing: (v: boolean) => void (failing = v),
    registers: () => calls.filter((c) => c.op === 'register').map((c) => c.at - 1_700_000_000_000),
  };
}

const nse = () => NetworkServiceEndpoint.fromPartial({ name: 'nse-1', networkServiceNames: ['svc'], url: 'unix:///x.sock' });

describe('refresh', () => {
  it('re-registers at 2/3 of the remaining lifetime, again and again', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock, 60_000);
    const ac = new AbortController();
    const chain = registryChain('t', [nseRefreshClient({ clock, signal: ac.signal })], { tail: reg.tail });
    await chain.register(nse(), newContext());
    assert.deepEqual(reg.registers(), [0]);
    await clock.advance(39_999);
    assert.deepEqual(reg.registers(), [0]);
    await clock.advance(1);
    assert.deepEqual(reg.registers(), [0, 40_000]);
    await clock.advance(40_000);
    assert.deepEqual(reg.registers(), [0, 40_000, 80_000]);
    ac.abort();
    assert.equal(clock.pending, 0);
  });

  it('retries a failed refresh with bounded backoff until it succeeds', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock, 3_000);
    const ac = new AbortController();
    const chain = registryChain('t', [nseRefreshClient({ clock, signal: ac.signal })], { tail: reg.tail });
    await chain.register(nse(), newContext());
    reg.setFailing(true);
    await clock.advance(2_000); // refresh at 2000 fails
    await clock.advance(200 + 400 + 800 + 1600 + 3200 + 5000 + 5000);
    assert.deepEqual(reg.registers(), [0, 2_000, 2_200, 2_600, 3_400, 5_000, 8_200, 13_200, 18_200]);
    reg.setFailing(false);
    await clock.advance(5_000); // next retry succeeds, then schedule at 2/3 of 3s
    assert.equal(reg.registers().at(-1), 23_200);
    await clock.advance(2_000);
    assert.equal(reg.registers().at(-1), 25_200);
    ac.abort();
    assert.equal(clock.pending, 0);
  });

  it('bounds a hanging refresh attempt by a quarter of the time left, so retries fit before expiry', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock, 60_000);
    let hang = false;
    const tail: NseHandler = {
      ...reg.tail,
      register: (item, ctx) =>
        hang
          ? (reg.calls.push({ at: clock.now(), op: 'register', item }), new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error))))
          : reg.tail.register(item, ctx),
    };
    const ac = new AbortController();
    const chain = registryChain('t', [nseRefreshClient({ clock, signal: ac.signal })], { tail });
    await chain.register(nse(), newContext());
    hang = true;
    await clock.advance(40_000); // refresh at 40 s hangs; 20 s are left, so the attempt gets 5 s
    await clock.advance(4_999);
    assert.deepEqual(reg.registers(), [0, 40_000]);
    hang = false;
    await clock.advance(1 + 200); // aborted at 45 s, retried 200 ms later, well before the expiry at 60 s
    assert.deepEqual(reg.registers(), [0, 40_000, 45_200]);
    ac.abort();
    assert.equal(clock.pending, 0);
  });

  it('stops on Unregister and forwards it', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock);
    const chain = registryChain('t', [nseRefreshClient({ clock })], { tail: reg.tail });
    await chain.register(nse(), newContext());
    assert.equal(clock.pending, 1);
    await chain.unregister(nse(), newContext());
    assert.equal(clock.pending, 0);
    await clock.advance(120_000);
    assert.deepEqual(reg.calls.map((c) => c.op), ['register', 'unregister']);
  });

  it('stops a retry loop when the client is stopped', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock, 3_000);
    const ac = new AbortController();
    const chain = registryChain('t', [nseRefreshClient({ clock, signal: ac.signal })], { tail: reg.tail });
    await chain.register(nse(), newContext());
    reg.setFailing(true);
    await clock.advance(2_100);
    assert.equal(clock.pending, 1);
    ac.abort();
    assert.equal(clock.pending, 0);
    await clock.advance(60_000);
    assert.equal(reg.registers().length, 2);
  });

  it('keeps asking for the lifetime the caller gave explicitly', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock, 60_000);
    const ac = new AbortController();
    const chain = registryChain('t', [nseRefreshClient({ clock, signal: ac.signal })], { tail: reg.tail });
    const item = nse();
    item.expirationTime = new Date(clock.now() + 9_000);
    await chain.register(item, newContext());
    await clock.advance(6_000);
    const second = reg.calls[1];
    assert.equal(second.at - 1_700_000_000_000, 6_000);
    assert.equal(second.item.expirationTime?.getTime(), clock.now() + 9_000);
    ac.abort();
  });

  it('does not refresh a registration without expiration', async () => {
    const clock = new FakeClock();
    const tail: NseHandler = { register: async (i) => i, find: async function* () {}, unregister: async () => {} };
    const chain = registryChain('t', [nseRefreshClient({ clock })], { tail });
    await chain.register(nse(), newContext());
    assert.equal(clock.pending, 0);
  });

  it('a new Register for the same name replaces the pending refresh', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock, 60_000);
    const ac = new AbortController();
    const chain = registryChain('t', [nseRefreshClient({ clock, signal: ac.signal })], { tail: reg.tail });
    await chain.register(nse(), newContext());
    await clock.advance(30_000);
    await chain.register(nse(), newContext());
    assert.equal(clock.pending, 1);
    await clock.advance(10_000);
    assert.deepEqual(reg.registers(), [0, 30_000]);
    await clock.advance(30_000);
    assert.deepEqual(reg.registers(), [0, 30_000, 70_000]);
    ac.abort();
  });

  it('Backoff doubles from min and caps at max; each wait is jittered into its upper half', () => {
    const low = new Backoff(200, 1000, () => 0);
    assert.deepEqual([low.next(), low.next(), low.next(), low.next()], [100, 200, 400, 500]);
    const b = new Backoff(200, 1000);
    assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [200, 400, 800, 1000, 1000]);
    b.reset();
    assert.equal(b.next(), 200);
  });
});
