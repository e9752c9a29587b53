import assert from 'node:assert/strict';
import { describe, it, test } from 'node:test';
import { realClock } from '../../core/clock.js';
import { createLogger, silentLogger } from '../../core/log.js';
import { sleep } from '../../core/signals.js';
import { IcmpProber, PARENT_GUARD, fpingArgv, fpingReply, packetGap } from './fping.js';
import { addNetns, delNetns, linuxSkipReason, sh } from './testenv.js';

const log = process.env.NSM_TEST_LOG ? createLogger('fping-test', 'debug') : silentLogger;

describe('fping prober, pure parts', () => {
  it('packetGap: one burst per round as root, the 1 ms fping allows otherwise', () => {
    assert.equal(packetGap(true), 0);
    assert.equal(packetGap(false), 1);
  });

  it('fpingArgv: loop mode, period = interval, reply deadline = timeout, nsenter for another netns', () => {
    const o = { interval: 200, timeout: 1000, root: true };
    const guard = ['sh', '-c', PARENT_GUARD, 'fping-guard'];
    assert.deepEqual(fpingArgv('self', ['10.0.0.1', 'fd00::1'], o), [...guard, 'fping', '-l', '-p', '200', '-t', '1000', '-i', '0', '10.0.0.1', 'fd00::1']);
    assert.deepEqual(fpingArgv('self', ['10.0.0.1'], { ...o, root: false }).slice(10, 12), ['-i', '1']);
    assert.deepEqual(fpingArgv('/run/netns/x', ['10.0.0.1'], { ...o, bin: '/opt/fping' }).slice(0, 7), ['nsenter', '--net=/run/netns/x', ...guard, '/opt/fping']);
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

/** [pid, ppid] of every fping whose guard shell is a child of this test. */
async function fpings(): Promise<Array<[number, number]>> {
  const { stdout } = await sh('ps', ['-e', '-o', 'pid=,ppid=,comm=']);
  const rows = stdout.split('\n').map((l) => l.trim().split(/\s+/)).filter((r) => r.length === 3);
  const guards = new Set(rows.filter((r) => Number(r[1]) === process.pid).map((r) => Number(r[0])));
  return rows.filter((r) => r[2] === 'fping' && guards.has(Number(r[1]))).map((r) => [Number(r[0]), Number(r[1])]);
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
    assert.deepEqual((await fpings()).map(([, guard]) => guard), [prober.pid], 'the old fping is gone');

    for (const d of ['127.0.0.1', '127.0.0.2', '127.0.0.3', '10.255.255.1']) prober.remove(d);
    const end = Date.now() + 1000;
    while ((await fpings()).length > 0 && Date.now() < end) await sleep(20);
    assert.deepEqual(await fpings(), [], 'no target, no process');
  });

  test('fping dies with the process that started it (its guard sees its stdin end)', async (t) => {
    const script = `import { IcmpProber } from ${JSON.stringify(new URL('./fping.js', import.meta.url).href)};
      import { realClock } from ${JSON.stringify(new URL('../../core/clock.js', import.meta.url).href)};
      import { silentLogger } from ${JSON.stringify(new URL('../../core/log.js', import.meta.url).href)};
      const p = new IcmpProber({ log: silentLogger, clock: realClock, netns: 'self' }, { interval: 50, timeout: 500 });
      p.add('127.0.0.1');
      setInterval(() => { if (p.lastReply('127.0.0.1')) console.log('up'); }, 20);`;
    const { spawn } = await import('node:child_process');
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    t.after(() => void parent.kill('SIGKILL'));
    await new Promise<void>((resolve) => parent.stdout.once('data', () => resolve()));
    const mine = async () => {
      const { stdout } = await sh('ps', ['-e', '-o', 'pid=,ppid=,comm=']);
      const rows = stdout.split('\n').map((l) => l.trim().split(/\s+/));
      const guards = new Set(rows.filter((r) => Number(r[1]) === parent.pid).map((r) => r[0]));
      const all = new Set([...guards, ...rows.filter((r) => guards.has(r[1]!)).map((r) => r[0])]);
      return rows.filter((r) => r[2] === 'fping' && (all.has(r[1]!) || guards.has(r[0]!))).length;
    };
    assert.equal(await mine(), 1, 'fping runs under the parent');
    const guardPids = (await sh('ps', ['-o', 'pid=', '--ppid', String(parent.pid)])).stdout.trim().split(/\s+/).map(Number);
    const fpingPid = (await sh('ps', ['-o', 'pid=,comm=', '--ppid', String(guardPids[0])])).stdout.split('\n').find((l) => l.includes('fping'))!.trim().split(/\s+/)[0]!;
    parent.kill('SIGKILL');
    const end = Date.now() + 2000;
    const alive = () => sh('kill', ['-0', fpingPid]).then(() => true, () => false);
    while ((await alive()) && Date.now() < end) await sleep(20);
    assert.equal(await alive(), false, 'fping ended when its parent was killed');
  });
}
