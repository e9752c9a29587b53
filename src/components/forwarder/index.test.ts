import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../../core/clock.js';
import { silentLogger } from '../../core/log.js';
import { FakeDataPlane } from '../../dataplane/fake/index.js';
import type { PairSpec } from '../../dataplane/types.js';
import { ConfigError } from '../../core/errors.js';
import { forwarderConfig, startForwarder } from './index.js';
import { isLocalAddress } from './tunnel-ip.js';

function spec(owner: string, n: number): PairSpec {
  return {
    owner,
    nsc: { netns: 'nsc-pod', name: `nsm-${n}`, addrs: [`172.16.1.${2 * n + 1}/32`], routes: [] },
    nse: { netns: 'nse-pod', name: `nse-${n}`, addrs: [`172.16.1.${2 * n}/32`], routes: [] },
  };
}

describe('forwarder orphan GC', () => {
  it('links left by a previous forwarder: re-requested ones are adopted, the rest removed after NSM_ORPHAN_GRACE', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nsm-fwd-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const before = new FakeDataPlane();
    const kept = await before.ensure(spec('kept', 1));
    await before.ensure(spec('orphan', 2));
    const dataplane = before.restarted();
    const clock = new FakeClock();
    const config = forwarderConfig.parse({ NSM_INSECURE: 'true', NSM_LISTEN_ON: `unix://${join(dir, 'fwd.sock')}`, NSM_CONNECT_TO: `unix://${join(dir, 'no-nsmgr.sock')}`, NSM_ORPHAN_GRACE: '10s' });
    const fwd = await startForwarder(config, { log: silentLogger, dataplane, clock });
    t.after(() => fwd.stop());

    // The connection of "kept" is re-requested (xconnect ensures it) within the grace period.
    const again = await dataplane.ensure(spec('kept', 1));
    assert.deepEqual([again.actions, again.nsc.ifindex], [[], kept.nsc.ifindex]);
    await clock.advance(9_999);
    assert.ok(dataplane.link('nsc-pod', 'nsm-2'), 'orphans stay until the grace period is over');
    await clock.advance(1);
    assert.deepEqual(dataplane.links('nsc-pod').map((l) => l.name), ['nsm-1']);
    assert.deepEqual(dataplane.links('nse-pod').map((l) => l.name), ['nse-1']);
  });

  it('then sweeps every NSM_ORPHAN_GC_INTERVAL: a link no connection holds goes once two sweeps saw it', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nsm-fwd-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const other = new FakeDataPlane();
    const dataplane = other.restarted();
    const clock = new FakeClock();
    const config = forwarderConfig.parse({ NSM_INSECURE: 'true', NSM_LISTEN_ON: `unix://${join(dir, 'fwd.sock')}`, NSM_CONNECT_TO: `unix://${join(dir, 'no-nsmgr.sock')}`, NSM_ORPHAN_GRACE: '10s', NSM_ORPHAN_GC_INTERVAL: '5s' });
    const fwd = await startForwarder(config, { log: silentLogger, dataplane, clock });
    t.after(() => fwd.stop());
    await dataplane.ensure(spec('kept', 1));
    await other.ensure(spec('leaked', 2)); // e.g. what a removal cut short leaves: nobody holds it here
    await clock.advance(10_000); // collection of what start found (nothing)
    await clock.advance(5_000); // first sweep: seen once
    assert.ok(dataplane.link('nsc-pod', 'nsm-2'));
    await clock.advance(5_000); // second sweep: removed
    assert.deepEqual(dataplane.links('nsc-pod').map((l) => l.name), ['nsm-1']);
    assert.deepEqual(dataplane.links('nse-pod').map((l) => l.name), ['nse-1']);
  });

  it('NSM_ORPHAN_GC_INTERVAL is bounded (1s-1h)', () => {
    // (the default listen socket's directory need not exist on a test machine)
    const listen = { NSM_LISTEN_ON: `unix://${join(tmpdir(), 'fwd.sock')}` };
    assert.throws(() => forwarderConfig.parse({ NSM_INSECURE: 'true', ...listen, NSM_ORPHAN_GC_INTERVAL: '500ms' }), /NSM_ORPHAN_GC_INTERVAL/);
    assert.throws(() => forwarderConfig.parse({ NSM_INSECURE: 'true', ...listen, NSM_ORPHAN_GC_INTERVAL: '2h' }), /NSM_ORPHAN_GC_INTERVAL/);
    assert.equal(forwarderConfig.parse({ NSM_INSECURE: 'true', ...listen, NSM_ORPHAN_GC_INTERVAL: '1h' }).orphanGcInterval, 3_600_000);
  });
});


describe('forwarder NSM_TUNNEL_IP', () => {
  it('is parsed as an IP or empty; at start it must be an address of this node, else a ConfigError naming it and the value', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nsm-fwd-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const env = { NSM_INSECURE: 'true', NSM_LISTEN_ON: `unix://${join(dir, 'fwd.sock')}`, NSM_CONNECT_TO: `unix://${join(dir, 'no-nsmgr.sock')}` };
    assert.equal(forwarderConfig.parse(env).tunnelIp, '', 'default: no remote mechanisms');
    assert.throws(() => forwarderConfig.parse({ ...env, NSM_TUNNEL_IP: 'node-1' }), (e: Error) => e instanceof ConfigError && e.variable === 'NSM_TUNNEL_IP');
    assert.throws(() => forwarderConfig.parse({ ...env, NSM_WIREGUARD_PORTS: '20000' }), (e: Error) => e instanceof ConfigError && e.variable === 'NSM_WIREGUARD_PORTS');
    // 192.0.2.1 (TEST-NET-1) is not an address of this host: binding it fails
    const config = forwarderConfig.parse({ ...env, NSM_TUNNEL_IP: '192.0.2.1' });
    await assert.rejects(startForwarder(config, { log: silentLogger, dataplane: new FakeDataPlane() }), (e: Error) => e instanceof ConfigError && e.variable === 'NSM_TUNNEL_IP' && /192\.0\.2\.1/.test(e.message) && /not an address of this node/.test(e.message));
    const ok = await startForwarder(forwarderConfig.parse({ ...env, NSM_TUNNEL_IP: '127.0.0.1' }), { log: silentLogger, dataplane: new FakeDataPlane() });
    await ok.stop();
  });

  it('isLocalAddress: loopback addresses bind, others do not', async () => {
    const table: Array<[string, boolean]> = [['127.0.0.1', true], ['::1', true], ['192.0.2.1', false], ['2001:db8::1', false]];
    for (const [ip, want] of table) assert.equal(await isLocalAddress(ip), want, ip);
  });
});
