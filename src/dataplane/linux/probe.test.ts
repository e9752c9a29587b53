import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { Connection } from '../../api/gen/connection.js';
import { MECH_KERNEL, PARAM_NAME } from '../../api/constants.js';
import { FakeClock } from '../../core/clock.js';
import { createLogger, silentLogger } from '../../core/log.js';
import { sleep } from '../../core/signals.js';
import { probeContract, PROBE_SETTLE_MS } from '../probe-contract.js';
import type { Observation } from '../probe.js';
import { linuxDataPlane } from './index.js';
import { Freshness, coalesced, freshnessTicker, icmpPairs, isReply, linuxProbe, pingArgv } from './probe.js';
import { addNetns, delNetns, linuxSkipReason, sh, type TestNetns } from './testenv.js';

const log = process.env.NSM_TEST_LOG ? createLogger('probe-test', 'debug') : silentLogger;

describe('linux probe, pure parts', () => {
  it('icmpPairs: every same-family (src, dst) pair, bare addresses', () => {
    assert.deepEqual(icmpPairs(['172.16.1.101/32', 'fd00::101/128'], ['172.16.1.100/32', 'fd00::100/128', '10.0.0.1']), [
      ['172.16.1.101', '172.16.1.100'],
      ['172.16.1.101', '10.0.0.1'],
      ['fd00::101', 'fd00::100'],
    ]);
    assert.deepEqual(icmpPairs(['172.16.1.101/32'], ['fd00::100/128']), []);
  });

  it('pingArgv: interval in seconds, reply wait at least 1 s, -6 for IPv6, nsenter for another netns', () => {
    const o = { interval: 200, timeout: 1000 };
    assert.deepEqual(pingArgv('self', ['172.16.1.101', '172.16.1.100'], o), ['ping', '-n', '-i', '0.2', '-W', '1', '-I', '172.16.1.101', '172.16.1.100']);
    assert.deepEqual(pingArgv('self', ['fd00::101', 'fd00::100'], { interval: 1000, timeout: 2500 }), ['ping', '-6', '-n', '-i', '1', '-W', '3', '-I', 'fd00::101', 'fd00::100']);
    assert.deepEqual(pingArgv('self', ['a', 'b'], { interval: 100, timeout: 300 }).slice(4, 6), ['-W', '1']);
    assert.deepEqual(pingArgv('/run/netns/x', ['172.16.1.101', '172.16.1.100'], o).slice(0, 3), ['nsenter', '--net=/run/netns/x', 'ping']);
  });

  it('isReply: only reply lines count', () => {
    assert.equal(isReply('64 bytes from 172.16.1.100: icmp_seq=1 ttl=64 time=0.049 ms'), true);
    assert.equal(isReply('64 bytes from fd00::100: icmp_seq=3 ttl=64 time=0.1 ms'), true);
    assert.equal(isReply('PING 172.16.1.100 (172.16.1.100) from 172.16.1.101 : 56(84) bytes of data.'), false);
    assert.equal(isReply('From 172.16.1.101 icmp_seq=1 Destination Host Unreachable'), false);
    assert.equal(isReply(''), false);
  });

  it('Freshness: a pair is stale after `timeout` without a reply, counted from the grace start', async () => {
    const clock = new FakeClock();
    const f = new Freshness(clock, 1000);
    const pairs = [['172.16.1.101', '172.16.1.100']] as const;
    await clock.advance(1000);
    assert.deepEqual(f.check(pairs), { ok: true });
    await clock.advance(1);
    assert.deepEqual(f.check(pairs), { ok: false, source: 'probe', reason: 'no-reply', detail: 'no ICMP reply from 172.16.1.100 (source 172.16.1.101) for 1001 ms' });
    f.replied(pairs[0]);
    assert.deepEqual(f.check(pairs), { ok: true });
    await clock.advance(900);
    f.reset();
    await clock.advance(1000);
    assert.deepEqual(f.check(pairs), { ok: true }, 'reset restarts the grace period');
    await clock.advance(1);
    assert.equal(f.check(pairs).ok, false);
    assert.deepEqual(f.check([]), { ok: true });
  });

  it('Freshness: reset(graceMs) lengthens one grace period beyond the timeout, never shortens it', async () => {
    const clock = new FakeClock();
    const f = new Freshness(clock, 1000);
    const pairs = [['a', 'b']] as const;
    f.reset(3000);
    await clock.advance(3000);
    assert.equal(f.check(pairs).ok, true);
    await clock.advance(1);
    assert.equal(f.check(pairs).ok, false);
    f.reset(200);
    await clock.advance(1000);
    assert.equal(f.check(pairs).ok, true);
    await clock.advance(1);
    assert.equal(f.check(pairs).ok, false);
    f.reset();
    f.replied(pairs[0]);
    await clock.advance(1001);
    assert.equal(f.check(pairs).ok, false, 'a plain reset drops the extra grace');
  });

  it('coalesced: calls during a run cause exactly one more run', async () => {
    const stop = new AbortController();
    let runs = 0;
    let release: (() => void) | undefined;
    const run = coalesced(async () => {
      runs++;
      await new Promise<void>((r) => (release = r));
    }, stop.signal);
    const first = run();
    void run();
    void run();
    void run();
    assert.equal(runs, 1);
    release!();
    await sleep(0);
    assert.equal(runs, 2);
    release!();
    await first;
    assert.equal(runs, 2);
    const third = run();
    assert.equal(runs, 3);
    void run();
    stop.abort();
    release!();
    await third;
    assert.equal(runs, 3, 'no further run once stopped');
  });

  it('freshnessTicker: checks every interval, reports a fault once until a check is ok', async () => {
    const clock = new FakeClock();
    const states: Observation[] = [{ ok: true }, { ok: false, source: 'probe', detail: 'x' }, { ok: false, source: 'probe', detail: 'x' }, { ok: true }, { ok: false, source: 'probe', detail: 'y' }];
    let i = 0;
    const reported: Observation[] = [];
    const ticker = freshnessTicker(clock, 200, () => states[Math.min(i++, states.length - 1)]!, (o) => reported.push(o));
    await clock.advance(199);
    assert.equal(i, 0);
    await clock.advance(1);
    assert.equal(i, 1);
    await clock.advance(800);
    assert.equal(i, 5);
    assert.deepEqual(reported.map((o) => (o.ok ? 'ok' : o.detail)), ['x', 'y']);
    ticker.cancel();
    await clock.advance(1000);
    assert.equal(i, 5);
    assert.equal(clock.pending, 0);
  });

  it('no kernel mechanism: check is ok and watch ends at once, without reading the kernel', async () => {
    const probe = linuxProbe({ log, netns: '/nonexistent/netns' }, { interval: 200, timeout: 1000, icmp: true });
    const conn = Connection.fromPartial({ id: 'c', mechanism: { cls: 'LOCAL', type: 'MEMIF', parameters: { [PARAM_NAME]: 'nsm-1' } } });
    assert.deepEqual(await probe.check(conn, new AbortController().signal), { ok: true });
    for await (const o of probe.watch(conn, new AbortController().signal)) assert.fail(`unexpected ${JSON.stringify(o)}`);
  });

  it('an unreadable netns is a kernel fault naming the interface', async () => {
    const probe = linuxProbe({ log, netns: '/nonexistent/netns' }, { interval: 200, timeout: 1000, icmp: false });
    const conn = Connection.fromPartial({ id: 'c', mechanism: { cls: 'LOCAL', type: MECH_KERNEL, parameters: { [PARAM_NAME]: 'nsm-1' } } });
    const o = await probe.check(conn, new AbortController().signal);
    assert.equal(o.ok, false);
    if (!o.ok) {
      assert.equal(o.reason, 'unreadable');
      assert.match(o.detail, /^cannot read nsm-1: /);
    }
  });
});

const skip = await linuxSkipReason();

/** Processes whose netns is `ns` (the probe's monitor and pings run there through nsenter). */
async function processesIn(ns: TestNetns): Promise<number> {
  let n = 0;
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const s = await stat(`/proc/${pid}/ns/net`, { bigint: true }).catch(() => undefined);
    if (s && s.ino === ns.ino) n++;
  }
  return n;
}

if (skip) {
  console.log(`# linux probe tests on real netns skipped: ${skip}`);
  test('linux probe on real netns', { skip }, () => undefined);
} else {
  const nets = new Map<string, TestNetns>();
  const ipn = (url: string, ...args: string[]) => sh('ip', ['-n', nets.get(url)!.name, ...args]).then(() => undefined);
  probeContract('linux', async () => {
    const a = await addNetns('pa');
    const b = await addNetns('pb');
    nets.set(a.inodeUrl, a);
    nets.set(b.inodeUrl, b);
    return {
      dp: linuxDataPlane({ log }),
      nsA: a.inodeUrl,
      nsB: b.inodeUrl,
      probe: linuxProbe({ log, netns: a.path }, { interval: 200, timeout: 1000, icmp: false }),
      break: {
        setDown: (u, n) => ipn(u, 'link', 'set', 'dev', n, 'down'),
        deleteLink: (u, n) => ipn(u, 'link', 'del', 'dev', n),
        flushAddrs: (u, n) => ipn(u, 'addr', 'flush', 'dev', n),
        delRoute: (u, n, p) => ipn(u, 'route', 'del', p, 'dev', n),
      },
      nudge: async (u) => {
        await ipn(u, 'link', 'add', 'nudge0', 'type', 'bridge');
        await ipn(u, 'link', 'del', 'nudge0');
      },
      processes: (u) => processesIn(nets.get(u)!),
      cleanup: async () => {
        nets.delete(a.inodeUrl);
        nets.delete(b.inodeUrl);
        await delNetns(a, b);
      },
    };
  });

  test('linux probe: ICMP through a healthy connection stays fresh; a silent peer is a probe fault', async (t) => {
    const a = await addNetns('ia');
    const b = await addNetns('ib');
    t.after(() => delNetns(a, b));
    const dp = linuxDataPlane({ log });
    await dp.ensure({ owner: 'conn-icmp', nsc: { netns: a.inodeUrl, name: 'nsm-1', addrs: ['172.16.1.101/32'], routes: [{ prefix: '172.16.1.100/32' }] }, nse: { netns: b.inodeUrl, name: 'nse-1', addrs: ['172.16.1.100/32'], routes: [{ prefix: '172.16.1.101/32' }] } });
    const probe = linuxProbe({ log, netns: a.path }, { interval: 100, timeout: 600, icmp: true });
    const conn = Connection.fromPartial({ id: 'conn-icmp', mechanism: { cls: 'LOCAL', type: MECH_KERNEL, parameters: { [PARAM_NAME]: 'nsm-1' } }, context: { ipContext: { srcIpAddrs: ['172.16.1.101/32'], dstIpAddrs: ['172.16.1.100/32'] } } });
    const ac = new AbortController();
    const seen: Observation[] = [];
    const done = (async () => {
      for await (const o of probe.watch(conn, ac.signal)) seen.push(o);
    })();
    try {
      await sleep(PROBE_SETTLE_MS + 1000);
      assert.equal(seen.length, 0, 'replies keep the pair fresh');
      assert.deepEqual(await probe.check(conn, ac.signal), { ok: true });
      await sh('ip', ['-n', b.name, 'addr', 'flush', 'dev', 'nse-1']);
      const deadline = Date.now() + 5000;
      while (!seen.some((o) => !o.ok) && Date.now() < deadline) await sleep(50);
      const fault = seen.find((o) => !o.ok);
      assert.ok(fault && !fault.ok && fault.source === 'probe' && fault.reason === 'no-reply', JSON.stringify(seen));
      assert.equal(seen.length, 1, 'reported once while the pair stays silent');
      const again = await probe.check(conn, ac.signal);
      assert.equal(!again.ok && again.reason, 'no-reply');
    } finally {
      ac.abort();
      await done;
    }
    const deadline = Date.now() + 3000;
    while ((await processesIn(a)) > 0 && Date.now() < deadline) await sleep(50);
    assert.equal(await processesIn(a), 0, 'pings and monitor are gone');
  });
}
