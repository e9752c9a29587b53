import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataplaneError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { sleep } from '../../core/signals.js';
import { Ip, MONITOR_QUEUE_LIMIT, SELF, type MonitorNotice } from './ip.js';

/** An `ip` stand-in: a shell script run as `<script> monitor <objects>`. */
async function fakeIp(t: { after(fn: () => Promise<void>): void }, body: string): Promise<{ ip: Ip; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nsm-ip-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const bin = join(dir, 'ip');
  await writeFile(bin, `#!/bin/sh\n${body}\n`);
  await chmod(bin, 0o755);
  return { ip: new Ip(silentLogger, { ipBin: bin }), dir };
}

describe('Ip.monitor (no root: a stand-in script for ip)', () => {
  it('yields bursts of whole lines; a monitor that dies on its own ends with a DataplaneError after what it printed', async (t) => {
    const { ip } = await fakeIp(t, 'echo "2: nsm-1: <BROADCAST> state DOWN"; echo "cannot talk to the kernel" >&2; exit 3');
    const seen: string[] = [];
    await assert.rejects(
      (async () => {
        for await (const n of ip.monitor(SELF, ['link'], new AbortController().signal)) seen.push(...n.lines);
      })(),
      (e: Error) => e instanceof DataplaneError && e.step === 'watch links' && /exited \(3\)/.test(e.message) && /cannot talk to the kernel/.test(e.message),
    );
    assert.deepEqual(seen, ['2: nsm-1: <BROADCAST> state DOWN']);
  });

  it('ends without error on abort, and stops the process', async (t) => {
    const { ip } = await fakeIp(t, 'echo started; exec sleep 30');
    const ac = new AbortController();
    const it = ip.monitor(SELF, ['link'], ac.signal);
    assert.deepEqual((await it.next()).value?.lines, ['started']);
    const rest = it.next();
    ac.abort();
    assert.deepEqual(await rest, { value: undefined, done: true });
  });

  it('a slow consumer loses the oldest notices, never the newest', async (t) => {
    const count = MONITOR_QUEUE_LIMIT * 2;
    const { ip, dir } = await fakeIp(t, `i=1; while [ $i -le ${count} ]; do echo "line $i"; sleep 0.001; i=$((i+1)); done; touch "$(dirname "$0")/done"; exec sleep 30`);
    const ac = new AbortController();
    t.after(() => ac.abort());
    const it = ip.monitor(SELF, ['link'], ac.signal);
    const first = await it.next();
    // A notice carries the whole lines read together; under load the first read can hold more than one.
    assert.equal(first.value?.lines[0], 'line 1');
    const deadline = Date.now() + 20_000;
    while (await access(join(dir, 'done')).then(() => false, () => true)) {
      assert.ok(Date.now() < deadline, 'stand-in finished printing');
      await sleep(50);
    }
    await sleep(100);
    const rest: MonitorNotice[] = [];
    const drained = (async () => {
      for await (const n of { [Symbol.asyncIterator]: () => it }) rest.push(n);
    })();
    await sleep(100);
    ac.abort();
    await drained;
    const lines = rest.flatMap((n) => n.lines);
    assert.ok(rest.length <= MONITOR_QUEUE_LIMIT, `${rest.length} notices buffered`);
    assert.ok(lines.length < count - 1, `some were dropped (${lines.length} left)`);
    assert.equal(lines.at(-1), `line ${count}`);
  });
});

describe('Ip: how a netns is entered (no root: stand-in scripts)', () => {
  it('`ip -n <path>` first; where that cannot open a netns that exists, nsenter for this call and every later one', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'nsm-ipn-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const calls = join(dir, 'calls');
    const ipBin = join(dir, 'ip');
    const nsenterBin = join(dir, 'nsenter');
    await writeFile(ipBin, `#!/bin/sh\necho "ip $*" >> ${calls}\nif [ "$1" = "-n" ]; then echo 'Cannot open network namespace "x": No such file or directory' >&2; exit 1; fi\ncat >/dev/null; echo '[]'\n`);
    await writeFile(nsenterBin, `#!/bin/sh\necho "nsenter $1" >> ${calls}\nshift; exec "$@"\n`);
    await chmod(ipBin, 0o755);
    await chmod(nsenterBin, 0o755);
    const ip = new Ip(silentLogger, { ipBin, nsenterBin });
    assert.deepEqual(ip.ipArgv(dir, ['-j', 'link', 'show']).slice(0, 2), [ipBin, '-n']);
    assert.ok(ip.ipArgv(dir, ['x'])[2]!.endsWith(`/..${dir}`), 'climbs out of the netns directory to the path');
    assert.deepEqual((await ip.read(dir, ['link show'], { op: 'read', target: 't' })).json, [[]]);
    assert.deepEqual((await ip.read(dir, ['link show'], { op: 'read', target: 't' })).json, [[]]);
    const lines = (await readFile(calls, 'utf8')).trim().split('\n');
    assert.deepEqual(lines.map((l) => l.split(' ').slice(0, 2).join(' ')), ['ip -n', `nsenter --net=${dir}`, 'ip -d', `nsenter --net=${dir}`, 'ip -d']);
  });
});
