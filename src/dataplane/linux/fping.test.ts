import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { realClock } from '../../core/clock.js';
import { createLogger, silentLogger } from '../../core/log.js';
import { sleep } from '../../core/signals.js';
import { IcmpProber, fpingArgv, fpingReply, packetGap } from './fping.js';
import { addNetns, delNetns, linuxSkipReason, sh } from './testenv.js';

const log = process.env.NSM_TEST_LOG ? createLogger('fping-test', 'debug') : silentLogger;

describe('fping prober, pure parts', () => {
  it('packetGap: one burst per round as root, the 1 ms fping allows otherwise', () => {
    assert.equal(packetGap(true), 0);
    assert.equal(packetGap(false), 1);
  });

  it('fpingArgv: loop mode, period = interval, reply deadline = timeout, nsenter for another netns', () => {
    const o = { interval: 200, timeout: 1000, root: true };
    assert.deepEqual(fpingArgv('self', ['10.0.0.1', 'fd00::1'], o), ['fping', '-l', '-p', '200', '-t', '1000', '-i', '0', '10.0.0.1', 'fd00::1']);
    assert.deepEqual(fpingArgv('self', ['10.0.0.1'], { ...o, root: false }).slice(6, 8), ['-i', '1']);
    assert.deepEqual(fpingArgv('/run/netns/x', ['10.0.0.1'], { ...o, bin: '/opt/fping' }).slice(0, 3), ['nsenter', '--net=/run/netns/x', '/opt/fping']);
  });

  it('fpingReply: the target of a reply line, nothing for other lines', () => {
    assert.equal(fpingReply('10.80.0.1 : [0], 64 bytes, 0.046 ms (0.046 avg, 0% loss)'), '10.80.0.1');
    assert.equal(fpingReply('fd00::1   : [12], 64 bytes, 0.031 ms (0.097 avg, 0% loss)'), 'fd00::1');
    assert.equal(fpingReply('10.1.2.3  : [0], timed out (NaN avg, 100% loss)'), undefined);
    assert.equal(fpingReply('ICMP Host Unreachable from 10.0.0.2 for ICMP Echo sent to 10.0.0.9'), undefined);
    assert.equal(fpingReply(''), undefined);
  });
});

const skip = (await linuxSkipReason()) ?? (await sh('fping', ['-v']).then(() => undefined, () => 'needs fping (apt-get install -y fping)'));

/** Pids of the fping processes whose parent is this test (nsenter execs fping: same pid). */
async function fpings(): Promise<number[]> {
  const { stdout } = await sh('ps', ['-o', 'pid=,comm=', '--ppid', String(process.pid)]);
  return stdout.split('\n').filter((l) => /\bfping$/.test(l.trim())).map((l) => Number(l.trim().split(/\s+/)[0]));
}

if (skip) {
  console.log(`# fping prober on a real netns skipped: ${skip}`);
  test('fping prober on a real netns', { skip }, () => undefined);
} else {
  test('fping prober: one process for all targets, replies per target, restarted without a gap on a new target, gone when none is wanted', async (t) => {
    const ns = await addNetns('fp');
    t.after(() => delNetns(ns));
    await sh('ip', ['-n', ns.name, 'link', 'set', 'lo', 'up']);
    const prober = new IcmpProber({ log, clock: realClock, netns: ns.path }, { interval: 50, timeout: 500 });
    t.after(() => prober.stop());
    prober.add('127.0.0.1');
    prober.add('127.0.0.2');
    prober.add('10.255.255.1');
    const since = Date.now();
    const deadline = since + 3000;
    while ((prober.lastReply('127.0.0.1') === undefined || prober.lastReply('127.0.0.2') === undefined) && Date.now() < deadline) await sleep(20);
    assert.ok(prober.lastReply('127.0.0.1')! >= since && prober.lastReply('127.0.0.2')! >= since, 'both loopback targets answer');
    assert.equal(prober.lastReply('10.255.255.1'), undefined, 'an unroutable target never answers');
    assert.equal((await fpings()).length, 1, 'one fping for three targets');

    const first = prober.pid;
    prober.add('127.0.0.3');
    let gap = 0;
    let last = prober.lastReply('127.0.0.1')!;
    const until = Date.now() + 600;
    while (Date.now() < until) {
      await sleep(10);
      const r = prober.lastReply('127.0.0.1')!;
      gap = Math.max(gap, r - last);
      last = r;
    }
    assert.notEqual(prober.pid, first, 'a new target restarted fping');
    assert.ok(prober.lastReply('127.0.0.3') !== undefined, 'the new target answers');
    assert.ok(gap < 200, `replies of a kept target went on through the restart (longest gap ${gap} ms)`);
    assert.deepEqual(await fpings(), [prober.pid], 'the old fping is gone');

    for (const d of ['127.0.0.1', '127.0.0.2', '127.0.0.3', '10.255.255.1']) prober.remove(d);
    const end = Date.now() + 2000;
    while ((await fpings()).length > 0 && Date.now() < end) await sleep(20);
    assert.deepEqual(await fpings(), [], 'no target, no process');
  });
}
