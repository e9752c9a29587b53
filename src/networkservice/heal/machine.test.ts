import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Connection } from '../../api/gen/connection.js';
import { FakeClock } from '../../core/clock.js';
import type { EventFactory } from '../../core/context.js';
import { NotFoundError, UnavailableError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { HealMachine } from './machine.js';
import type { ControlPlaneWatch, DataPlaneProbe, HealEvent, Observation } from './types.js';

const OPTS = { interval: 200, confirmations: 3, maxBackoff: 5000, baseBackoff: 100, stableWindow: 5000, reselectGrace: 3000 };

/** A controllable probe: `state` is what check() sees; `emit` pushes a watch observation. */
function fakeProbe() {
  let state: Observation = { ok: true };
  const listeners = new Set<(o: Observation) => void>();
  const probe: DataPlaneProbe & { set(o: Observation): void; emit(o: Observation): void; checks: number } = {
    checks: 0,
    set(o) {
      state = o;
    },
    emit(o) {
      for (const l of listeners) l(o);
    },
    async *watch(_conn, signal) {
      const queue: Observation[] = [];
      let wake: (() => void) | undefined;
      const l = (o: Observation) => {
        queue.push(o);
        wake?.();
      };
      listeners.add(l);
      try {
        while (!signal.aborted) {
          if (queue.length === 0) await new Promise<void>((r) => ((wake = r), signal.addEventListener('abort', () => r(), { once: true })));
          while (queue.length) yield queue.shift()!;
        }
      } finally {
        listeners.delete(l);
      }
    },
    async check() {
      probe.checks++;
      return state;
    },
    reset() {},
  };
  return probe;
}

function fakeControlPlane() {
  const listeners = new Set<(r: string) => void>();
  const cp: ControlPlaneWatch & { down(reason: string): void } = {
    down(reason) {
      for (const l of listeners) l(reason);
    },
    async *watch(_conn, signal) {
      let reason: string | undefined;
      let wake: (() => void) | undefined;
      const l = (r: string) => ((reason = r), wake?.());
      listeners.add(l);
      try {
        await new Promise<void>((r) => ((wake = r), signal.addEventListener('abort', () => r(), { once: true })));
        if (reason !== undefined && !signal.aborted) yield { reason };
      } finally {
        listeners.delete(l);
      }
    },
  };
  return cp;
}

function fakeEvents(script: Array<'ok' | Error>, onRequest?: (reselect: boolean) => void) {
  const lifetime = new AbortController();
  const calls: boolean[] = [];
  const events: EventFactory = {
    lifetime: lifetime.signal,
    async request(opts) {
      const reselect = opts?.reselect ?? false;
      calls.push(reselect);
      onRequest?.(reselect);
      const next = script.shift() ?? 'ok';
      if (next instanceof Error) throw next;
      return Connection.fromPartial({ id: 'nsc-0' });
    },
    async close() {
      lifetime.abort();
    },
  };
  return { events, calls, end: () => lifetime.abort() };
}

async function settle(clock: FakeClock, ms: number) {
  for (let t = 0; t < ms; t += 50) await clock.advance(50);
}

function setup(script: Array<'ok' | Error> = [], onRequest?: (reselect: boolean) => void) {
  const clock = new FakeClock();
  const probe = fakeProbe();
  const cp = fakeControlPlane();
  const ev = fakeEvents(script, onRequest);
  const seen: HealEvent[] = [];
  const m = new HealMachine({ clock, log: silentLogger, events: ev.events, probe, controlPlane: cp, sink: seen, random: () => 1 }, OPTS, Connection.fromPartial({ id: 'nsc-0' }));
  const done = m.run();
  return { clock, probe, cp, ev, seen, m, done, types: () => seen.map((e) => e.type) };
}

describe('heal machine', () => {
  it('confirms a kernel fault over 3 checks, repairs in place, reports healed', async () => {
    const h = setup([], () => h.probe.set({ ok: true }));
    await settle(h.clock, 50);
    h.probe.set({ ok: false, source: 'kernel', detail: 'nsm-1 is down' });
    h.probe.emit({ ok: false, source: 'kernel', detail: 'nsm-1 is down' });
    await settle(h.clock, 150);
    assert.deepEqual(h.ev.calls, [], 'no repair before the fault is confirmed');
    await settle(h.clock, 400);
    assert.deepEqual(h.ev.calls, [false], 'one repair, without reselect');
    assert.deepEqual(h.types(), ['suspect', 'detected', 'repairing', 'healed']);
    const healed = h.seen.at(-1)!;
    assert.equal(healed.type === 'healed' && healed.action, 'repair');
    h.ev.end();
    await h.done;
    assert.equal(h.m.state, 'closed');
  });

  it('a fault that clears before confirmation heals nothing', async () => {
    const h = setup();
    await settle(h.clock, 50);
    h.probe.set({ ok: false, source: 'kernel', detail: 'address missing' });
    h.probe.emit({ ok: false, source: 'kernel', detail: 'address missing' });
    await settle(h.clock, 100);
    h.probe.set({ ok: true });
    await settle(h.clock, 1000);
    assert.deepEqual(h.ev.calls, []);
    assert.deepEqual(h.types(), ['suspect', 'cleared']);
    h.ev.end();
    await h.done;
  });

  it('a probe fault is confirmed like a kernel fault: 3 observations one interval apart, then one repair', async () => {
    const h = setup([], () => h.probe.set({ ok: true }));
    await settle(h.clock, 50);
    h.probe.set({ ok: false, source: 'probe', detail: 'no ICMP reply from 10.0.0.2 for 600 ms' });
    h.probe.emit({ ok: false, source: 'probe', detail: 'no ICMP reply from 10.0.0.2 for 600 ms' });
    await settle(h.clock, 350);
    assert.deepEqual(h.ev.calls, [], 'not confirmed after two observations');
    assert.deepEqual(h.types(), ['suspect']);
    await settle(h.clock, 100);
    assert.deepEqual(h.ev.calls, [false]);
    assert.deepEqual(h.types(), ['suspect', 'detected', 'repairing', 'healed']);
    h.ev.end();
    await h.done;
  });

  it('a probe fault that clears before confirmation (a late reply) heals nothing', async () => {
    const h = setup();
    await settle(h.clock, 50);
    h.probe.set({ ok: false, source: 'probe', detail: 'no ICMP reply from 10.0.0.2 for 600 ms' });
    h.probe.emit({ ok: false, source: 'probe', detail: 'no ICMP reply from 10.0.0.2 for 600 ms' });
    await settle(h.clock, 250);
    h.probe.set({ ok: true });
    await settle(h.clock, 1000);
    assert.deepEqual(h.ev.calls, []);
    assert.deepEqual(h.types(), ['suspect', 'cleared']);
    h.ev.end();
    await h.done;
  });

  it('control plane down with a healthy data plane: repair only, retried with backoff, never reselect', async () => {
    const down = new UnavailableError('nsmgr unreachable');
    const h = setup([down, down, down, 'ok']);
    await settle(h.clock, 50);
    h.cp.down('monitor stream to nsmgr broke');
    await settle(h.clock, 2000);
    assert.deepEqual(h.ev.calls, [false, false, false, false]);
    const failed = h.seen.filter((e) => e.type === 'failed').map((e) => (e.type === 'failed' ? e.retryInMs : 0));
    assert.deepEqual(failed, [100, 200, 400], 'bounded exponential backoff');
    assert.equal(h.types().at(-1), 'healed');
    h.ev.end();
    await h.done;
  });

  it('control plane down and the endpoint is gone: reselect', async () => {
    const h = setup([new NotFoundError('endpoint nse-1 is gone'), 'ok']);
    await settle(h.clock, 50);
    h.cp.down('nsmgr reports the connection DOWN');
    await settle(h.clock, 500);
    assert.deepEqual(h.ev.calls, [false, true]);
    const healed = h.seen.at(-1)!;
    assert.equal(healed.type === 'healed' && healed.action, 'reselect');
    h.ev.end();
    await h.done;
  });

  it('data plane down and repairs fail: escalates to reselect after two failed repairs', async () => {
    const h = setup([new UnavailableError('x'), new UnavailableError('y'), 'ok']);
    await settle(h.clock, 50);
    h.probe.set({ ok: false, source: 'probe', detail: 'no reply' });
    h.probe.emit({ ok: false, source: 'probe', detail: 'no reply' });
    await settle(h.clock, 450);
    h.probe.set({ ok: true });
    await settle(h.clock, 1000);
    assert.deepEqual(h.ev.calls, [false, false, true]);
    h.ev.end();
    await h.done;
  });

  it('a repair that does not restore the data plane escalates to reselect', async () => {
    const h = setup([], (reselect) => h.probe.set(reselect ? { ok: true } : { ok: false, source: 'kernel', detail: 'still down' }));
    await settle(h.clock, 50);
    h.probe.set({ ok: false, source: 'kernel', detail: 'link deleted' });
    h.probe.emit({ ok: false, source: 'kernel', detail: 'link deleted' });
    await settle(h.clock, 3000);
    assert.deepEqual(h.ev.calls, [false, false, true]);
    assert.equal(h.types().at(-1), 'healed');
    h.ev.end();
    await h.done;
  });

  it('a kernel fault soon after a repair is repaired again (reconcile fixes kernel state), never reselected', async () => {
    const h = setup([], () => h.probe.set({ ok: true }));
    for (let i = 0; i < 3; i++) {
      await settle(h.clock, 500);
      h.probe.set({ ok: false, source: 'kernel', detail: 'nsm-1 is down' });
      h.probe.emit({ ok: false, source: 'kernel', detail: 'nsm-1 is down' });
      await settle(h.clock, 600);
    }
    assert.deepEqual(h.ev.calls, [false, false, false]);
    h.ev.end();
    await h.done;
  });

  it('a probe fault soon after a repair escalates to reselect: the repair did not restore traffic', async () => {
    const h = setup([], () => h.probe.set({ ok: true }));
    await settle(h.clock, 50);
    h.probe.set({ ok: false, source: 'kernel', detail: 'route missing' });
    h.probe.emit({ ok: false, source: 'kernel', detail: 'route missing' });
    await settle(h.clock, 600);
    h.probe.set({ ok: false, source: 'probe', detail: 'no ICMP reply for 1000 ms' });
    h.probe.emit({ ok: false, source: 'probe', detail: 'no ICMP reply for 1000 ms' });
    await settle(h.clock, 600);
    assert.deepEqual(h.ev.calls, [false, true]);
    h.ev.end();
    await h.done;
  });

  it('closing(): the Close of the owner is not taken for a fault (its DELETE event heals nothing)', async () => {
    const h = setup();
    await settle(h.clock, 50);
    h.m.closing();
    h.cp.down('connection deleted by the nsmgr');
    h.probe.emit({ ok: false, source: 'kernel', detail: 'interface nsm-1 is missing' });
    await settle(h.clock, 1000);
    assert.deepEqual(h.ev.calls, []);
    assert.deepEqual(h.types(), []);
    await h.done;
    h.ev.end();
  });

  it('does nothing after Close', async () => {
    const h = setup();
    await settle(h.clock, 50);
    h.ev.end();
    await h.done;
    h.probe.set({ ok: false, source: 'kernel', detail: 'down' });
    h.probe.emit({ ok: false, source: 'kernel', detail: 'down' });
    h.cp.down('x');
    await settle(h.clock, 2000);
    assert.deepEqual(h.ev.calls, []);
    assert.equal(h.clock.pending, 0, 'no timer left');
  });
});
