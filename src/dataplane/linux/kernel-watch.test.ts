import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getEventListeners } from 'node:events';
import { abortable } from '../../core/signals.js';
import { SharedRun, observe } from './kernel-watch.js';
import { parseState } from './state.js';

/** A run whose end the test decides. */
function gated() {
  const releases: Array<(v: number) => void> = [];
  let runs = 0;
  const shared = new SharedRun(() => {
    runs++;
    return new Promise<number>((r) => releases.push(r));
  });
  return { shared, runs: () => runs, release: (v: number) => releases.shift()!(v) };
}

describe('kernel watch, pure parts', () => {
  it('SharedRun: callers during a run share exactly one run after it, and get its result', async () => {
    const g = gated();
    const first = g.shared.next();
    const a = g.shared.next();
    const b = g.shared.next();
    assert.equal(a, b, 'one queued run for both');
    assert.equal(g.runs(), 1);
    g.release(1);
    assert.equal(await first, 1);
    await new Promise((r) => setImmediate(r));
    assert.equal(g.runs(), 2, 'the queued run started after the first ended');
    g.release(2);
    assert.deepEqual([await a, await b], [2, 2]);
    const c = g.shared.next();
    assert.equal(g.runs(), 3, 'nothing running: a new run at once');
    g.release(3);
    assert.equal(await c, 3);
  });

  it('SharedRun: a failed run does not block the next', async () => {
    let n = 0;
    const shared = new SharedRun(async () => {
      if (++n === 1) throw new Error('boom');
      return n;
    });
    const first = shared.next();
    const second = shared.next();
    await assert.rejects(first, /boom/);
    assert.equal(await second, 2);
  });

  it('abortable: rejects on abort without waiting, and leaves no listener either way', async () => {
    const ac = new AbortController();
    const never = new Promise<number>(() => undefined);
    const p = abortable(never, ac.signal);
    ac.abort(new Error('stop'));
    await assert.rejects(p, /stop/);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    const ok = new AbortController();
    assert.equal(await abortable(Promise.resolve(7), ok.signal), 7);
    assert.equal(getEventListeners(ok.signal, 'abort').length, 0);
  });

  it('observe: one read of the netns judges each interface by the kernel-fault rule; a failed read is unreadable', () => {
    const links = [
      { ifindex: 2, ifname: 'nsm-1', flags: ['UP', 'LOWER_UP'], operstate: 'UP', mtu: 1500, address: '02:00:00:00:00:01', addr_info: [{ family: 'inet', local: '10.0.0.1', prefixlen: 32, scope: 'global' }] },
      { ifindex: 3, ifname: 'nsm-2', flags: ['BROADCAST'], operstate: 'DOWN', mtu: 1500, address: '02:00:00:00:00:02', addr_info: [] },
    ];
    const routes = [{ dst: '10.0.0.2', dev: 'nsm-1', protocol: 'static', scope: 'link', flags: [] }];
    const state = parseState([links, routes, []]);
    assert.deepEqual(observe({ ifname: 'nsm-1', src: ['10.0.0.1/32'], dst: ['10.0.0.2/32'] }, { state }), { ok: true });
    const down = observe({ ifname: 'nsm-2', src: [], dst: [] }, { state });
    assert.equal(!down.ok && down.reason, 'down');
    const gone = observe({ ifname: 'nsm-3', src: [], dst: [] }, { state });
    assert.equal(!gone.ok && gone.reason, 'missing');
    const unreadable = observe({ ifname: 'nsm-1', src: [], dst: [] }, { error: 'no such netns' });
    assert.deepEqual(unreadable, { ok: false, source: 'kernel', reason: 'unreadable', detail: 'cannot read nsm-1: no such netns' });
  });
});
