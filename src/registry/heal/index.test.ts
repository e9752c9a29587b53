import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkService, NetworkServiceEndpoint, type NetworkServiceEndpointResponse } from '../../api/gen/registry.js';
import { registryChain, type NseHandler, type NsHandler } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { UnavailableError } from '../../core/errors.js';
import { nsHealClient, nseHealClient } from './index.js';

/** A fake registry whose watch streams can be broken and whose Register can be made to fail. */
function fakeRegistry(clock: FakeClock, opts: { answerWatch?: boolean } = {}) {
  const log: string[] = [];
  let down = false;
  const breakers = new Set<() => void>();
  const streams = { open: 0, opened: 0 };
  const tail: NseHandler = {
    async register(item) {
      log.push(`register@${clock.now() - 1_700_000_000_000}`);
      if (down) throw new UnavailableError('registry down');
      return item;
    },
    async *find(q, ctx) {
      streams.opened++;
      if (down) throw new UnavailableError('registry down');
      streams.open++;
      try {
        if (opts.answerWatch !== false) yield { networkServiceEndpoint: q.networkServiceEndpoint, deleted: false } as NetworkServiceEndpointResponse;
        if (opts.answerWatch === false) return;
        await new Promise<void>((resolve, reject) => {
          const b = () => reject(new UnavailableError('stream broken'));
          breakers.add(b);
          ctx.signal.addEventListener('abort', () => {
            breakers.delete(b);
            resolve();
          }, { once: true });
        });
      } finally {
        streams.open--;
      }
    },
    async unregister() {
      log.push('unregister');
    },
  };
  return {
    tail,
    log,
    streams,
    setDown: (v: boolean) => void (down = v),
    breakAll: () => {
      for (const b of [...breakers]) b();
      breakers.clear();
    },
  };
}

const nse = () => NetworkServiceEndpoint.fromPartial({ name: 'nse-1', url: 'unix:///x.sock' });

describe('heal', () => {
  it('watches its own name and re-registers with backoff once the registry is back', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock);
    const ac = new AbortController();
    const chain = registryChain('t', [nseHealClient({ clock, signal: ac.signal })], { tail: reg.tail });
    await chain.register(nse(), newContext());
    await clock.advance(0);
    assert.equal(reg.streams.open, 1);

    reg.setDown(true);
    reg.breakAll();
    await clock.advance(0);
    assert.equal(reg.streams.open, 0);
    await clock.advance(200 + 400);
    assert.deepEqual(reg.log, ['register@0', 'register@200', 'register@600']);
    reg.setDown(false);
    await clock.advance(800);
    assert.deepEqual(reg.log, ['register@0', 'register@200', 'register@600', 'register@1400']);
    assert.equal(reg.streams.open, 1, 'watching again');

    // The watch answered, so the backoff restarts at 200 ms for the next outage.
    reg.breakAll();
    await clock.advance(0);
    await clock.advance(200);
    assert.equal(reg.log.at(-1), 'register@1600');
    ac.abort();
    await clock.advance(0);
    assert.equal(reg.streams.open, 0);
    assert.equal(clock.pending, 0);
  });

  it('stops watching on Unregister and forwards it', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock);
    const chain = registryChain('t', [nseHealClient({ clock })], { tail: reg.tail });
    await chain.register(nse(), newContext());
    await clock.advance(0);
    await chain.unregister(nse(), newContext());
    await clock.advance(0);
    assert.equal(reg.streams.open, 0);
    await clock.advance(10_000);
    assert.deepEqual(reg.log, ['register@0', 'unregister']);
    assert.equal(clock.pending, 0);
  });

  it('stops a retry loop when the client is stopped', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock);
    const ac = new AbortController();
    const chain = registryChain('t', [nseHealClient({ clock, signal: ac.signal })], { tail: reg.tail });
    await chain.register(nse(), newContext());
    await clock.advance(0);
    reg.setDown(true);
    reg.breakAll();
    await clock.advance(0);
    await clock.advance(300);
    assert.equal(clock.pending, 1);
    ac.abort();
    assert.equal(clock.pending, 0);
    await clock.advance(10_000);
    assert.deepEqual(reg.log, ['register@0', 'register@200']);
  });

  it('does not spin when watches end at once without an answer', async () => {
    const clock = new FakeClock();
    const reg = fakeRegistry(clock, { answerWatch: false });
    const ac = new AbortController();
    const chain = registryChain('t', [nseHealClient({ clock, signal: ac.signal })], { tail: reg.tail });
    await chain.register(nse(), newContext());
    await clock.advance(0);
    await clock.advance(200 + 400 + 800 + 1600);
    assert.deepEqual(reg.log, ['register@0', 'register@200', 'register@600', 'register@1400', 'register@3000']);
    ac.abort();
    assert.equal(clock.pending, 0);
  });

  it('heals an NS registration too', async () => {
    const clock = new FakeClock();
    const regs: string[] = [];
    let breakIt: (() => void) | undefined;
    const tail: NsHandler = {
      async register(item) {
        regs.push(item.name);
        return item;
      },
      async *find(q, ctx) {
        assert.equal(q.networkService?.name, 'svc');
        assert.equal(q.watch, true);
        yield { networkService: q.networkService, deleted: false };
        await new Promise<void>((resolve, reject) => {
          breakIt = () => reject(new UnavailableError('gone'));
          ctx.signal.addEventListener('abort', () => resolve(), { once: true });
        });
      },
      unregister: async () => {},
    };
    const ac = new AbortController();
    const chain = registryChain('t', [nsHealClient({ clock, signal: ac.signal })], { tail });
    await chain.register(NetworkService.fromPartial({ name: 'svc', payload: 'ETHERNET' }), newContext());
    await clock.advance(0);
    breakIt!();
    await clock.advance(0);
    await clock.advance(200);
    assert.deepEqual(regs, ['svc', 'svc']);
    ac.abort();
    await clock.advance(0);
    assert.equal(clock.pending, 0);
  });
});
