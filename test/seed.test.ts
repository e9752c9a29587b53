/**
 * The seed scenario (shared/seed/dataplane-interrupt.md) on real processes and real network namespaces,
 * step for step: service from netsvc.yaml, NSE and NSC with the seed's env, ping both ways, the seed's
 * own pinger (under busybox), `ip link set nsm-1 down`, the pinger sees the loss, the mesh heals by
 * itself, ping both ways again.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { addrs, healEvents, link, ping, requireRoot, seed, seedPinger, sh, startMesh, waitFor } from './harness.js';

describe('seed: dataplane-interrupt (real processes, real netns)', { concurrency: false }, () => {
  it('connects NSC and NSE with the kernel mechanism; pings both ways', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    const pods = await seed(t, mesh);
    const nsc = await link(pods.nscNs, 'nsm-1');
    assert.ok(nsc, 'nsm-1 exists in the NSC pod');
    assert.ok(nsc.flags.includes('UP') && nsc.flags.includes('LOWER_UP'), `nsm-1 is up: ${nsc.flags.join(',')}`);
    assert.deepEqual(await addrs(pods.nscNs, 'nsm-1'), ['172.16.1.101/32']);
    const nseLinks = JSON.parse(await sh('ip', ['-n', pods.nseNs, '-j', 'addr'])) as Array<{ ifname: string; addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>;
    const nseIf = nseLinks.find((l) => l.ifname !== 'lo');
    assert.ok(nseIf, 'the NSE pod has the other end');
    assert.ok(nseIf.ifname.startsWith('dataplane-') && nseIf.ifname.length <= 15, `generated name ${nseIf.ifname}`);
    assert.deepEqual(nseIf.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`), ['172.16.1.100/32']);
    assert.ok(await ping(pods.nscNs, '172.16.1.100', 4), 'NSC → NSE: ping -c 4 172.16.1.100');
    assert.ok(await ping(pods.nseNs, '172.16.1.101', 4), 'NSE → NSC: ping -c 4 172.16.1.101');
  });

  it('heals a data-plane interruption on its own; the seed pinger sees the loss; same interface identity', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    const pods = await seed(t, mesh);
    const before = await link(pods.nscNs, 'nsm-1');
    const pingerPath = join(mesh.dir, `done-${Math.floor(Math.random() * 32768)}`);
    const pinger = seedPinger(t, mesh.dir, pods.nscNs, pingerPath);
    let pingerOut = '';
    pinger.stdout!.on('data', (d: Buffer) => (pingerOut += d.toString()));
    await new Promise((r) => setTimeout(r, 5000));
    assert.equal(existsSync(pingerPath), false, `pinger is still running after 5 s (it saw no loss yet): ${pingerOut}`);

    await sh('ip', ['netns', 'exec', pods.nscNs, 'ip', 'link', 'set', 'nsm-1', 'down']);
    await waitFor('the pinger to see the interruption', () => existsSync(pingerPath), 10_000, 100);
    assert.match(pingerOut, /missing \d+ pings|ping timeout/);

    await waitFor('pings NSC → NSE after the heal', () => ping(pods.nscNs, '172.16.1.100', 1), 10_000);
    assert.ok(await ping(pods.nscNs, '172.16.1.100', 4), 'NSC → NSE: ping -c 4');
    assert.ok(await ping(pods.nseNs, '172.16.1.101', 4), 'NSE → NSC: ping -c 4');
    const after = await link(pods.nscNs, 'nsm-1');
    assert.equal(after?.ifindex, before?.ifindex, 'same ifindex');
    assert.equal(after?.address, before?.address, 'same MAC');
    const healed = healEvents(pods.nsc).filter((e) => e.type === 'healed');
    assert.equal(healed.length, 1, 'exactly one heal');
    assert.equal(healed[0].action, 'repair');
    assert.equal(healed[0].cause, 'data-plane');
  });
});
