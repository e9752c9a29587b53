/**
 * The heal matrix on real processes and real network namespaces: other data-plane interruptions, and
 * restarts of every component (killed with SIGKILL and started again, as a supervisor would).
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { addrs, applyNetsvc, healEvents, seedNscEnv, link, netns, nsm, ping, pingCounter, requireRoot, seed, sh, startMesh, waitFor } from './harness.js';

const inNs = (ns: string, ...args: string[]) => sh('ip', ['netns', 'exec', ns, ...args]);

describe('heal: data-plane interruptions (real processes, real netns)', { concurrency: false }, () => {
  const cases: Array<{ name: string; cut: (p: { nscNs: string; nseNs: string }) => Promise<unknown> }> = [
    { name: 'nsm-1 deleted', cut: (p) => inNs(p.nscNs, 'ip', 'link', 'del', 'nsm-1') },
    { name: 'its address flushed', cut: (p) => inNs(p.nscNs, 'ip', 'addr', 'flush', 'dev', 'nsm-1') },
    { name: 'its route to the NSE removed', cut: (p) => inNs(p.nscNs, 'ip', 'route', 'del', '172.16.1.100/32', 'dev', 'nsm-1') },
    {
      name: 'the NSE-side interface set down',
      cut: async (p) => {
        const l = JSON.parse(await sh('ip', ['-n', p.nseNs, '-j', 'link'])) as Array<{ ifname: string }>;
        const nseIf = l.find((x) => x.ifname !== 'lo')!.ifname;
        return inNs(p.nseNs, 'ip', 'link', 'set', nseIf, 'down');
      },
    },
  ];
  for (const c of cases) {
    it(`heals when ${c.name}`, async (t) => {
      if (!requireRoot(t)) return;
      const mesh = await startMesh(t);
      const pods = await seed(t, mesh);
      await c.cut(pods);
      assert.equal(await ping(pods.nscNs, '172.16.1.100', 1, 0.2), false, 'the cut broke the data plane (checked before the 400 ms confirmation can end)');
      await waitFor('ping NSC → NSE after the heal', () => ping(pods.nscNs, '172.16.1.100', 1), 10_000);
      assert.ok(await ping(pods.nseNs, '172.16.1.101', 2), 'NSE → NSC');
      assert.deepEqual(await addrs(pods.nscNs, 'nsm-1'), ['172.16.1.101/32']);
      const healed = healEvents(pods.nsc).filter((e) => e.type === 'healed');
      assert.ok(healed.length >= 1, 'the NSC healed by itself');
    });
  }
});

describe('heal: component restarts (real processes, real netns)', { concurrency: false }, () => {
  /** Kills `component` with SIGKILL and starts it again while `ping -i 0.2` runs through the connection. */
  async function restartUnderTraffic(t: TestContext, component: 'nsmgr' | 'forwarder') {
    const mesh = await startMesh(t);
    const pods = await seed(t, mesh);
    const before = await link(pods.nscNs, 'nsm-1');
    const pinger = pingCounter(t, pods.nscNs, '172.16.1.100');
    await new Promise((r) => setTimeout(r, 1000));
    await mesh.restart(component);
    await pods.nsc.waitLog(/"type":"healed"/, 15_000);
    await new Promise((r) => setTimeout(r, 1000));
    const pings = await pinger.stop();
    const after = await link(pods.nscNs, 'nsm-1');
    return { pods, pings, before, after, healed: healEvents(pods.nsc).filter((e) => e.type === 'healed') };
  }

  it('nsmgr SIGKILL + restart: zero lost pings, same interface, connection re-attached', async (t) => {
    if (!requireRoot(t)) return;
    const r = await restartUnderTraffic(t, 'nsmgr');
    assert.ok(r.pings.sent >= 8, `pings were sent (${r.pings.sent})`);
    assert.equal(r.pings.lost, 0, `lost ${r.pings.lost} of ${r.pings.sent} pings`);
    assert.deepEqual([r.after?.ifindex, r.after?.address], [r.before?.ifindex, r.before?.address], 'same name, ifindex and MAC');
    assert.equal(r.healed.at(-1)?.action, 'repair', 'control-plane heal never reselects while the data plane works');
    assert.equal(r.healed.at(-1)?.cause, 'control-plane');
  });

  it('forwarder SIGKILL + restart: links adopted, ping -i 0.2 loses nothing', async (t) => {
    if (!requireRoot(t)) return;
    const r = await restartUnderTraffic(t, 'forwarder');
    assert.equal(r.pings.lost, 0, `lost ${r.pings.lost} of ${r.pings.sent} pings`);
    assert.deepEqual([r.after?.ifindex, r.after?.address], [r.before?.ifindex, r.before?.address], 'link adopted, not recreated');
    assert.ok(await ping(r.pods.nseNs, '172.16.1.101', 2));
  });

  it('NSE SIGKILL with a second NSE present: the connection moves to it', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    const pods = await seed(t, mesh);
    const nse2Ns = await netns(t, 'nse2');
    const nse2 = nsm(t, mesh.dir, 'nse2', ['nse'], { NSM_NAME: 'nse-kernel-2', NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_CIDR_PREFIX: '172.16.1.102/31', NSM_SERVICE_NAMES: 'dataplane-interrupt', NSM_REGISTER_SERVICE: 'false' }, nse2Ns);
    await nse2.waitLog(/endpoint registered/);
    await pods.nse.kill('SIGKILL');
    await waitFor('ping to the new endpoint', () => ping(pods.nscNs, '172.16.1.102', 1), 15_000);
    assert.ok(await ping(nse2Ns, '172.16.1.103', 2), 'new NSE → NSC');
    const healed = healEvents(pods.nsc).filter((e) => e.type === 'healed');
    assert.equal(healed.at(-1)?.action, 'reselect');
  });

  it('registry SIGKILL + restart: existing connection untouched, a new NSC connects afterwards', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    // a /30 so that the endpoint has addresses for a second client (the seed's /31 holds exactly one)
    const pods = await seed(t, mesh, { nseEnv: { NSM_CIDR_PREFIX: '172.16.1.100/30' } });
    const before = await link(pods.nscNs, 'nsm-1');
    const pinger = pingCounter(t, pods.nscNs, '172.16.1.100');
    await mesh.restart('registry');
    // the restarted registry is empty: the service comes back from the manifest, endpoints and forwarders re-register by themselves
    await applyNetsvc(mesh);
    const nsc2Ns = await netns(t, 'nsc2');
    const nsc2 = nsm(t, mesh.dir, 'nsc2', ['nsc'], { NSM_NAME: 'nsc-kernel-2', NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_NETWORK_SERVICES: 'kernel://dataplane-interrupt/nsm-1' }, nsc2Ns);
    await nsc2.waitLog(/connection established/, 20_000);
    const r = await pinger.stop();
    assert.equal(r.lost, 0, `existing connection lost ${r.lost} of ${r.sent} pings`);
    const after = await link(pods.nscNs, 'nsm-1');
    assert.deepEqual([after?.ifindex, after?.address], [before?.ifindex, before?.address]);
    assert.equal(healEvents(pods.nsc).filter((e) => e.type === 'detected').length, 0, 'no heal for an unrelated restart');
  });
});

describe('client lifecycle (real processes, real netns)', { concurrency: false }, () => {
  it('SIGTERM of the NSC removes both interfaces', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    const pods = await seed(t, mesh);
    await pods.nsc.kill('SIGTERM');
    await waitFor('nsm-1 removed', async () => !(await link(pods.nscNs, 'nsm-1')), 5000);
    const nseLinks = JSON.parse(await sh('ip', ['-n', pods.nseNs, '-j', 'link'])) as Array<{ ifname: string }>;
    assert.deepEqual(nseLinks.map((l) => l.ifname), ['lo']);
  });

  it('SIGKILL of the NSC leaves the interfaces until the connection times out, then they are removed', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    const pods = await seed(t, mesh, { nscEnv: { NSM_MAX_TOKEN_LIFETIME: '20s', NSM_REQUEST_TIMEOUT: '15s' } });
    await pods.nsc.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(await link(pods.nscNs, 'nsm-1'), 'still there right after the kill');
    await waitFor('nsm-1 removed by the timeout', async () => !(await link(pods.nscNs, 'nsm-1')), 30_000, 250);
  });

  it('a restarted NSC adopts the connection nsmgr still holds: no second interface, same ifindex and MAC', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    const pods = await seed(t, mesh);
    const before = await link(pods.nscNs, 'nsm-1');
    await pods.nsc.kill('SIGKILL');
    const again = nsm(t, mesh.dir, 'nsc-again', ['nsc'], seedNscEnv(mesh), pods.nscNs);
    await again.waitLog(/connection established/);
    assert.match(again.log(), /adopting the connection nsmgr still holds/);
    const after = await link(pods.nscNs, 'nsm-1');
    assert.deepEqual([after?.ifindex, after?.address], [before?.ifindex, before?.address]);
    const nscLinks = (await sh('ip', ['-n', pods.nscNs, '-o', 'link'])).trim().split('\n');
    assert.equal(nscLinks.length, 2, `lo and nsm-1 only: ${nscLinks.join(' | ')}`);
    assert.ok(await ping(pods.nscNs, '172.16.1.100', 2));
  });

  it('re-Request after ip link set nsm-1 down brings the same link back up (same MAC and ifindex)', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    const pods = await seed(t, mesh, { nscEnv: { NSM_LIVENESS_CHECK_ENABLED: 'false', NSM_HEAL_CONFIRMATIONS: '100', NSM_MAX_TOKEN_LIFETIME: '5s' } });
    const before = await link(pods.nscNs, 'nsm-1');
    await inNs(pods.nscNs, 'ip', 'link', 'set', 'nsm-1', 'down');
    // no heal can confirm within 100 checks; the refresh (a plain re-Request every ~1 s) must converge it
    await waitFor('nsm-1 up again via refresh', async () => (await link(pods.nscNs, 'nsm-1'))?.flags.includes('UP'), 10_000);
    const after = await link(pods.nscNs, 'nsm-1');
    assert.deepEqual([after?.ifindex, after?.address], [before?.ifindex, before?.address]);
    await waitFor('ping after re-Request', () => ping(pods.nscNs, '172.16.1.100', 1), 5000);
  });
});
