import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { setMaxListeners } from 'node:events';
import { Writable } from 'node:stream';
import { Connection } from '../../api/gen/connection.js';
import { MECH_KERNEL, PARAM_NAME } from '../../api/constants.js';
import { FakeClock } from '../../core/clock.js';
import { createLogger, silentLogger } from '../../core/log.js';
import { sleep } from '../../core/signals.js';
import { probeContract, PROBE_SETTLE_MS } from '../probe-contract.js';
import type { Observation } from '../probe.js';
import { linuxDataPlane } from './index.js';
import { Freshness, icmpPairs, icmpTargets, linuxProbe, suspectAfter } from './probe.js';
import { addNetns, delNetns, linuxSkipReason, sh, type TestNetns } from './testenv.js';

const log = process.env.NSM_TEST_LOG ? createLogger('probe-test', 'debug') : silentLogger;

describe('linux probe, pure parts', () => {
  it('icmpPairs: every same-family (src, dst) pair, bare addresses; icmpTargets: their destinations once', () => {
    assert.deepEqual(icmpPairs(['172.16.1.101/32', 'fd00::101/128'], ['172.16.1.100/32', 'fd00::100/128', '10.0.0.1']), [
      ['172.16.1.101', '172.16.1.100'],
      ['172.16.1.101', '10.0.0.1'],
      ['fd00::101', 'fd00::100'],
    ]);
    assert.deepEqual(icmpPairs(['172.16.1.101/32'], ['fd00::100/128']), []);
    assert.deepEqual(icmpTargets({ ifname: 'nsm-1', src: ['10.0.0.1/32', '10.0.0.2/32'], dst: ['10.0.0.9/32', 'fd00::9/128'] }), ['10.0.0.9']);
  });

  it('suspectAfter: the confirmed fault still means `timeout` of silence, never less than one interval', () => {
    assert.equal(suspectAfter({ interval: 200, timeout: 1000 }), 1000);
    assert.equal(suspectAfter({ interval: 200, timeout: 1000, confirmations: 3 }), 600);
    assert.equal(suspectAfter({ interval: 200, timeout: 1000, confirmations: 100 }), 200);
  });
});

describe('linux probe, per-connection grace (Freshness)', () => {
  const TIMEOUT = 1000;
  const SUSPECT = 600;
  const setup = () => {
    const clock = new FakeClock();
    const replies = new Map<string, number>();
    const f = new Freshness(clock, { timeout: TIMEOUT, suspectAfter: SUSPECT }, (d) => replies.get(d));
    return { clock, f, reply: (d: string) => replies.set(d, clock.now()) };
  };

  it('a connection established long after the probe was made gets its own grace (the false heal of issue 11)', async () => {
    const { clock, f, reply } = setup();
    f.watched('a');
    reply('10.0.0.1');
    await clock.advance(30_000);
    f.watched('b');
    await clock.advance(200);
    assert.deepEqual(f.check('b', ['10.0.0.2']), { ok: true }, 'one interval in, no reply yet: still in grace');
    await clock.advance(TIMEOUT - 201);
    assert.deepEqual(f.check('b', ['10.0.0.2']), { ok: true });
    reply('10.0.0.2');
    await clock.advance(SUSPECT);
    assert.deepEqual(f.check('b', ['10.0.0.2']), { ok: true });
    await clock.advance(1);
    assert.deepEqual(f.check('b', ['10.0.0.2']), { ok: false, source: 'probe', reason: 'no-reply', detail: `no ICMP reply from 10.0.0.2 for ${SUSPECT + 1} ms` });
  });

  it('silence counts from the grace start: a reply from before it does not count, none at all is a fault after the grace', async () => {
    const { clock, f, reply } = setup();
    reply('10.0.0.1');
    await clock.advance(5000);
    f.watched('a');
    await clock.advance(TIMEOUT - 1);
    assert.equal(f.check('a', ['10.0.0.1']).ok, true);
    await clock.advance(1);
    const o = f.check('a', ['10.0.0.1']);
    assert.equal(!o.ok && o.detail, `no ICMP reply from 10.0.0.1 for ${TIMEOUT} ms`);
  });

  it('reset(conn) restarts the grace of that connection only; graceMs lengthens it once, and a watch start keeps it', async () => {
    const { clock, f } = setup();
    f.watched('a');
    f.watched('b');
    await clock.advance(TIMEOUT);
    f.reset('a', 3000);
    f.unwatched('a');
    f.watched('a');
    assert.equal(f.check('b', ['10.0.0.2']).ok, false, "a's reset does not touch b");
    await clock.advance(2999);
    assert.equal(f.check('a', ['10.0.0.1']).ok, true);
    await clock.advance(1);
    assert.equal(f.check('a', ['10.0.0.1']).ok, false);
    f.reset('a');
    await clock.advance(TIMEOUT - 1);
    assert.equal(f.check('a', ['10.0.0.1']).ok, true);
    await clock.advance(1);
    assert.equal(f.check('a', ['10.0.0.1']).ok, false, 'a plain reset is one timeout');
  });

  it('sweep forgets connections unwatched for longer than the ttl, and only those', async () => {
    const { clock, f } = setup();
    f.watched('a');
    f.watched('b');
    f.unwatched('b');
    await clock.advance(TIMEOUT + 1);
    f.sweep(TIMEOUT);
    assert.equal(f.check('a', ['10.0.0.1']).ok, false, 'a is kept');
    assert.equal(f.check('b', ['10.0.0.2']).ok, true, 'b was forgotten: a new grace');
    assert.deepEqual(f.check('c', []), { ok: true });
  });
});

describe('linux probe, the rest', () => {
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
const noFping = skip ?? (await sh('fping', ['-v']).then(() => undefined, () => 'needs fping (apt-get install -y fping)'));

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

  test('linux probe: ICMP through a healthy connection stays fresh; a silent peer is a probe fault', { skip: noFping }, async (t) => {
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

if (noFping) {
  test('linux probe: many connections of one netns', { skip: noFping }, () => undefined);
} else {
  test('linux probe: 20 connections of one netns share one ip monitor, one fping and one read per burst; a fault is reported for its connection only', async (t) => {
    const a = await addNetns('ma');
    const b = await addNetns('mb');
    t.after(() => delNetns(a, b));
    const lines: string[] = [];
    const sink = new Writable({ write: (c: Buffer, _e, cb) => (lines.push(...c.toString().split('\n').filter(Boolean)), cb()) });
    const dp = linuxDataPlane({ log });
    const conns: Connection[] = [];
    for (let i = 0; i < 20; i++) {
      const [src, dst] = [`10.90.${i}.1/32`, `10.90.${i}.2/32`];
      await dp.ensure({ owner: `conn-${i}`, nsc: { netns: a.inodeUrl, name: `nsm-${i}`, addrs: [src], routes: [{ prefix: dst }] }, nse: { netns: b.inodeUrl, name: `nse-${i}`, addrs: [dst], routes: [{ prefix: src }] } });
      conns.push(Connection.fromPartial({ id: `conn-${i}`, mechanism: { cls: 'LOCAL', type: MECH_KERNEL, parameters: { [PARAM_NAME]: `nsm-${i}` } }, context: { ipContext: { srcIpAddrs: [src], dstIpAddrs: [dst] } } }));
    }
    const probe = linuxProbe({ log: createLogger('probe-test', 'debug', sink), netns: a.path }, { interval: 100, timeout: 1000, icmp: true, confirmations: 3 });
    const ac = new AbortController();
    setMaxListeners(conns.length * 2, ac.signal);
    const seen = conns.map(() => [] as Observation[]);
    const done = conns.map(async (c, i) => {
      for await (const o of probe.watch(c, ac.signal)) seen[i]!.push(o);
    });
    const reads = () => lines.filter((l) => l.includes('"op":"read interface"')).length;
    try {
      await sleep(PROBE_SETTLE_MS + 1500);
      assert.deepEqual(seen.flat(), [], 'healthy connections: nothing reported');
      assert.equal(await processesIn(a), 4, 'for the netns: one ip monitor, one fping (and its guard shell, two processes)');
      for (const c of conns) assert.deepEqual(await probe.check(c, ac.signal), { ok: true });

      const before = reads();
      await sh('ip', ['-n', a.name, 'link', 'add', 'nudge0', 'type', 'bridge']);
      await sleep(300);
      const perBurst = reads() - before;
      assert.ok(perBurst >= 1 && perBurst <= 2, `one kernel event, ${perBurst} reads for 20 connections`);

      await sh('ip', ['-n', a.name, 'link', 'set', 'nsm-7', 'down']);
      const deadline = Date.now() + 3000;
      while (!seen[7]!.some((o) => !o.ok && o.source === 'probe') && Date.now() < deadline) await sleep(50);
      const kinds = seen[7]!.map((o) => (o.ok ? 'ok' : `${o.source}:${o.reason}`));
      assert.equal(kinds[0], 'kernel:down', JSON.stringify(kinds));
      assert.ok(kinds.includes('probe:no-reply'), JSON.stringify(kinds));
      assert.deepEqual(seen.filter((_, i) => i !== 7).flat(), [], 'no other connection saw a fault');
    } finally {
      ac.abort();
      await Promise.all(done);
    }
    const deadline = Date.now() + 3000;
    while ((await processesIn(a)) > 0 && Date.now() < deadline) await sleep(50);
    assert.equal(await processesIn(a), 0, 'monitor and fping are gone');
  });
}
