import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { networkServiceChain } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { silentLogger } from '../../core/log.js';
import { defaultRequest } from '../../testing/requests.js';
import { beginClient } from '../begin/index.js';
import { healClient, type ControlPlaneWatch, type HealEvent } from './index.js';

/** A control plane that reports the connection down once per `down()`. */
function controlPlane() {
  const waiting: Array<() => void> = [];
  const cp: ControlPlaneWatch & { down(): void; watching(): number } = {
    down: () => waiting.splice(0).forEach((wake) => wake()),
    watching: () => waiting.length,
    async *watch(_conn, signal) {
      const down = await new Promise<boolean>((resolve) => {
        waiting.push(() => resolve(true));
        signal.addEventListener('abort', () => resolve(false), { once: true });
      });
      if (down && !signal.aborted) yield { reason: 'nsmgr reports the connection DOWN' };
    },
  };
  return cp;
}

async function settle(clock: FakeClock, ms: number) {
  for (let t = 0; t < ms; t += 50) await clock.advance(50);
}

describe('heal client', () => {
  it('publishes the typed events of its connections as one AsyncIterable that ends with deps.signal', async () => {
    const clock = new FakeClock();
    const cp = controlPlane();
    const stop = new AbortController();
    const heal = healClient({ log: silentLogger, clock, controlPlane: cp, signal: stop.signal });
    const chain = networkServiceChain('t', [beginClient({ clock }), heal]);
    const conn = await chain.request(defaultRequest({ id: 'nsc-0' }), newContext());
    const seen: HealEvent[] = [];
    const reading = (async () => {
      for await (const e of heal.events) seen.push(e);
    })();
    await settle(clock, 50);
    assert.equal(cp.watching(), 1);
    cp.down();
    await settle(clock, 200);
    assert.deepEqual(
      seen.map((e) => e.type),
      ['detected', 'repairing', 'healed'],
    );
    assert.ok(seen.every((e) => e.connId === 'nsc-0'));
    stop.abort();
    await reading;
    await chain.close(conn, newContext());
    assert.equal(clock.pending, 0, 'no timer left');
  });

  it('keeps at most eventLimit events for a slow reader, dropping the oldest', async () => {
    const clock = new FakeClock();
    const cp = controlPlane();
    const heal = healClient({ log: silentLogger, clock, controlPlane: cp }, { eventLimit: 2 });
    const chain = networkServiceChain('t', [beginClient({ clock }), heal]);
    const conn = await chain.request(defaultRequest({ id: 'nsc-0' }), newContext());
    await settle(clock, 50);
    cp.down();
    await settle(clock, 200);
    const it = heal.events[Symbol.asyncIterator]();
    assert.deepEqual([(await it.next()).value?.type, (await it.next()).value?.type], ['repairing', 'healed']);
    await it.return!();
    await chain.close(conn, newContext());
  });
});
