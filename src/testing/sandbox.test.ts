/**
 * Tier-2 control-plane acceptance on the in-process sandbox: real components over real gRPC on unix
 * sockets, fake data plane, real clock (waits kept short). No root needed.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { ConnectionEventType, type Connection } from '../api/gen/connection.js';
import { PAYLOAD_ETHERNET } from '../api/constants.js';
import { sandbox, type Sandbox, type SandboxOptions } from './sandbox.js';

async function mesh(t: TestContext, opts: SandboxOptions = {}): Promise<Sandbox> {
  const sb = await sandbox(opts);
  t.after(() => sb.close());
  return sb;
}

async function eventually<T>(what: string, fn: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const names = (c: Connection) => c.path!.pathSegments.map((s) => s.name);
const nseOf = (c: Connection) => c.path!.pathSegments.at(-1)!.name;

describe('sandbox: local connection', () => {
  it('NSC → nsmgr → forwarder → NSE: 4 segments, p2p addresses and routes from NSM_CIDR_PREFIX', async (t) => {
    const sb = await mesh(t);
    await sb.addEndpoint({ name: 'nse-1', services: ['svc'], cidr: '172.16.1.100/31' });
    const nsc = await sb.addClient({ name: 'nsc-1', networkServices: ['kernel://svc/nsm-1'] });
    const [conn] = await nsc.connected;
    assert.deepEqual(names(conn), ['nsc-1', 'nsmgr-0', 'forwarder-0', 'nse-1']);
    assert.equal(conn.path!.index, 0);
    assert.equal(conn.id, 'nsc-1-0');
    const ip = conn.context!.ipContext!;
    assert.deepEqual(ip.srcIpAddrs, ['172.16.1.101/32']);
    assert.deepEqual(ip.dstIpAddrs, ['172.16.1.100/32']);
    assert.deepEqual(ip.srcRoutes.map((r) => r.prefix), ['172.16.1.100/32']);
    assert.deepEqual(ip.dstRoutes.map((r) => r.prefix), ['172.16.1.101/32']);
    const dp = sb.nodes[0]!.dataplane;
    const link = dp.link(nsc.netns, 'nsm-1');
    assert.ok(link?.up, 'client interface nsm-1 exists and is up');
    assert.deepEqual(link.addrs, ['172.16.1.101/32']);
    assert.ok(dp.reachable(nsc.netns, '172.16.1.100'), 'NSC reaches NSE');
    assert.ok(dp.reachable('fake://nse-1', '172.16.1.101'), 'NSE reaches NSC');
  });
});

describe('sandbox: refresh and close', () => {
  it('refresh: with 3s tokens the forwarder and the NSE see a second Request with the same ids within ~1 s', async (t) => {
    const sb = await mesh(t, { tokenLifetime: '3s' });
    const nse = await sb.addEndpoint({ name: 'nse-1', services: ['svc'] });
    const atNse = sb.monitor(nse);
    const nsc = await sb.addClient({ name: 'nsc-1', networkServices: ['kernel://svc/nsm-1'] });
    const [conn] = await nsc.connected;
    const dp = sb.nodes[0]!.dataplane;
    const t0 = Date.now();
    await eventually('a refresh at the forwarder', () => [...dp.ensures.values()].some((n) => n >= 2), 1500);
    assert.ok(Date.now() - t0 < 1500);
    assert.equal(dp.ensures.size, 1, 'the refresh carries the same connection id at the forwarder');
    const updates = await eventually('two UPDATEs of one connection at the NSE', () => {
      const ids = atNse.events.filter((e) => e.type === ConnectionEventType.UPDATE).flatMap((e) => Object.keys(e.connections));
      return ids.length >= 2 && ids;
    });
    assert.equal(new Set(updates).size, 1, 'same connection id on refresh');
    assert.equal(dp.creates, 1, 'refresh converges, never recreates');
    assert.deepEqual(names(nsc.connections()[0]!), names(conn));
  });

  it('Close reaches every hop, frees the addresses; nsmgr monitor shows UPDATE then DELETE', async (t) => {
    const sb = await mesh(t);
    const node = sb.nodes[0]!;
    const nse = await sb.addEndpoint({ name: 'nse-1', services: ['svc'], cidr: '172.16.1.100/31' });
    const rec = { nsmgr: sb.monitor(node.nsmgr), forwarder: sb.monitor(node.forwarder), nse: sb.monitor(nse) };
    const first = await sb.addClient({ name: 'nsc-1', networkServices: ['kernel://svc/nsm-1'] });
    const [conn] = await first.connected;
    await first.stop();
    const ofFirst = (e: { connections: Record<string, Connection> }) => Object.values(e.connections).some((c) => c.path?.pathSegments[0]?.id === conn.id);
    for (const [hop, r] of Object.entries(rec)) await r.waitFor((e) => e.type === ConnectionEventType.DELETE && ofFirst(e)).catch(() => assert.fail(`no DELETE at ${hop}`));
    const seen = rec.nsmgr.events.filter((e) => e.type !== ConnectionEventType.INITIAL_STATE_TRANSFER && ofFirst(e)).map((e) => e.type);
    assert.deepEqual([seen[0], seen.at(-1)], [ConnectionEventType.UPDATE, ConnectionEventType.DELETE]);
    assert.equal(node.dataplane.link(first.netns, 'nsm-1'), undefined, 'client interface removed');
    assert.equal(node.dataplane.links('fake://nse-1').length, 0, 'endpoint interface removed');

    // A /31 has one pair: the second client connects only if the first one's addresses were freed.
    const second = await sb.addClient({ name: 'nsc-2', networkServices: ['kernel://svc/nsm-1'] });
    const [again] = await second.connected;
    assert.deepEqual(again.context!.ipContext!.srcIpAddrs, conn.context!.ipContext!.srcIpAddrs);
    assert.deepEqual(again.context!.ipContext!.dstIpAddrs, conn.context!.ipContext!.dstIpAddrs);
  });
});

describe('sandbox: service registration and selection', () => {
  it('seed NSE settings: NSM_REGISTER_SERVICE=false, service registered separately (nsm apply)', async (t) => {
    const sb = await mesh(t);
    await sb.addEndpoint({ name: 'nse-kernel', services: ['dataplane-interrupt'], cidr: '172.16.1.100/31', registerService: false });
    const nsc = await sb.addClient({ name: 'nsc-kernel', networkServices: ['kernel://dataplane-interrupt/nsm-1'] });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(nsc.connections().length, 0, 'no connection while the service is not registered');
    await sb.registerService({ name: 'dataplane-interrupt', payload: PAYLOAD_ETHERNET });
    const [conn] = await nsc.connected;
    assert.equal(conn.networkService, 'dataplane-interrupt');
    assert.equal(conn.payload, PAYLOAD_ETHERNET);
    assert.deepEqual(names(conn), ['nsc-kernel', 'nsmgr-0', 'forwarder-0', 'nse-kernel']);
    assert.deepEqual(conn.context!.ipContext!.srcIpAddrs, ['172.16.1.101/32']);
  });

  it('two NSEs for one service: clients are spread round robin', async (t) => {
    const sb = await mesh(t);
    await sb.addEndpoint({ name: 'nse-a', services: ['svc'] });
    await sb.addEndpoint({ name: 'nse-b', services: ['svc'] });
    const picked: string[] = [];
    for (let i = 0; i < 4; i++) {
      const nsc = await sb.addClient({ name: `nsc-${i}`, networkServices: ['kernel://svc/nsm-1'] });
      picked.push(nseOf((await nsc.connected)[0]!));
    }
    assert.deepEqual(picked.filter((n) => n === 'nse-a').length, 2, `picked ${picked.join(',')}`);
    assert.deepEqual(picked.filter((n) => n === 'nse-b').length, 2, `picked ${picked.join(',')}`);
    for (let i = 1; i < picked.length; i++) assert.notEqual(picked[i], picked[i - 1], 'alternates');
  });

  it('NetworkService matches: source_selector on the NSURL label routes to the NSE with the selected labels', async (t) => {
    const sb = await mesh(t);
    await sb.registerService({
      name: 'svc',
      payload: PAYLOAD_ETHERNET,
      matches: [
        { sourceSelector: { app: 'red' }, routes: [{ destinationSelector: { color: 'red' }, weight: 0 }], fallthrough: false, metadata: undefined },
        { sourceSelector: { app: 'blue' }, routes: [{ destinationSelector: { color: 'blue' }, weight: 0 }], fallthrough: false, metadata: undefined },
      ],
    });
    await sb.addEndpoint({ name: 'nse-red', services: ['svc'], labels: { color: 'red' }, registerService: false });
    await sb.addEndpoint({ name: 'nse-blue', services: ['svc'], labels: { color: 'blue' }, registerService: false });
    for (const [i, app] of ['blue', 'red', 'red', 'blue'].entries()) {
      const nsc = await sb.addClient({ name: `nsc-${i}`, networkServices: [`kernel://svc/nsm-1?app=${app}`] });
      const [conn] = await nsc.connected;
      assert.equal(nseOf(conn), `nse-${app}`);
      assert.equal(conn.labels.app, app);
    }
  });
});

describe('sandbox: heal', () => {
  it('client interface set down: repaired in place (same ifindex)', async (t) => {
    const sb = await mesh(t);
    const dp = sb.nodes[0]!.dataplane;
    await sb.addEndpoint({ name: 'nse-1', services: ['svc'], cidr: '172.16.1.100/31' });
    const nsc = await sb.addClient({ name: 'nsc-1', networkServices: ['kernel://svc/nsm-1'] });
    await nsc.connected;
    const before = dp.link(nsc.netns, 'nsm-1')!;
    dp.setDown(nsc.netns, 'nsm-1');
    assert.ok(!dp.reachable(nsc.netns, '172.16.1.100'));
    const healed = await eventually('healed', () => nsc.healEvents.find((e) => e.type === 'healed'));
    assert.equal(healed.type === 'healed' && healed.action, 'repair');
    assert.equal(healed.type === 'healed' && healed.cause, 'data-plane');
    const after = dp.link(nsc.netns, 'nsm-1')!;
    assert.ok(after.up);
    assert.equal(after.ifindex, before.ifindex);
    assert.equal(after.mac, before.mac);
    assert.equal(dp.creates, 1);
    assert.ok(dp.reachable(nsc.netns, '172.16.1.100') && dp.reachable('fake://nse-1', '172.16.1.101'), 'pings both ways again');
  });

  it('nsmgr restarted: the connection is re-attached, the data plane is not recreated', async (t) => {
    const sb = await mesh(t);
    const node = sb.nodes[0]!;
    await sb.addEndpoint({ name: 'nse-1', services: ['svc'] });
    const nsc = await sb.addClient({ name: 'nsc-1', networkServices: ['kernel://svc/nsm-1'] });
    const [conn] = await nsc.connected;
    const before = node.dataplane.link(nsc.netns, 'nsm-1')!;
    const ensures = () => [...node.dataplane.ensures.values()].reduce((a, b) => a + b, 0);
    const ensuresBefore = ensures();
    await sb.restart(node.nsmgr);
    const healed = await eventually('healed', () => nsc.healEvents.find((e) => e.type === 'healed'), 10_000);
    assert.equal(healed.type === 'healed' && healed.action, 'repair');
    assert.equal(healed.type === 'healed' && healed.cause, 'control-plane');
    assert.ok(ensures() > ensuresBefore, 'the re-Request reached the forwarder');
    assert.equal(node.dataplane.ensures.size, 1, 'same connection id at the forwarder');
    assert.equal(node.dataplane.creates, 1, 'no new veth pair');
    assert.equal(node.dataplane.link(nsc.netns, 'nsm-1')!.ifindex, before.ifindex);
    assert.deepEqual(names(nsc.connections()[0]!), names(conn));
    const rec = sb.monitor(node.nsmgr, { pathSegments: [{ id: conn.id, name: 'nsc-1', token: '', expires: undefined, metrics: {} }] });
    await rec.waitFor((e) => Object.keys(e.connections).length > 0);
  });

  it('NSE killed with a second NSE present: the connection moves to it', async (t) => {
    const sb = await mesh(t);
    const nses = [await sb.addEndpoint({ name: 'nse-1', services: ['svc'] }), await sb.addEndpoint({ name: 'nse-2', services: ['svc'] })];
    const nsc = await sb.addClient({ name: 'nsc-1', networkServices: ['kernel://svc/nsm-1'] });
    const [conn] = await nsc.connected;
    const first = nseOf(conn);
    await sb.kill(nses.find((n) => n.name === first)!);
    const moved = await eventually('connection on the other NSE', () => nsc.connections().find((c) => nseOf(c) !== first), 10_000);
    assert.equal(nseOf(moved), first === 'nse-1' ? 'nse-2' : 'nse-1');
    assert.equal(moved.id, conn.id);
    const dp = sb.nodes[0]!.dataplane;
    assert.ok(dp.link(nsc.netns, 'nsm-1')?.up);
    assert.equal(dp.links(`fake://${first}`).length, 0, 'nothing left towards the dead NSE');
    assert.equal(dp.links(`fake://${nseOf(moved)}`).length, 1);
  });

  it('registry restarted: the existing connection is untouched and a new client connects', async (t) => {
    const sb = await mesh(t);
    const dp = sb.nodes[0]!.dataplane;
    await sb.addEndpoint({ name: 'nse-1', services: ['svc'] });
    const nsc = await sb.addClient({ name: 'nsc-1', networkServices: ['kernel://svc/nsm-1'] });
    await nsc.connected;
    const before = dp.link(nsc.netns, 'nsm-1')!;
    await sb.restart(sb.registry);
    const late = await sb.addClient({ name: 'nsc-2', networkServices: ['kernel://svc/nsm-1'] });
    const [conn2] = await late.connected;
    assert.equal(nseOf(conn2), 'nse-1');
    assert.deepEqual(nsc.healEvents.filter((e) => e.type !== 'suspect' && e.type !== 'cleared'), [], 'no heal of the existing connection');
    const after = dp.link(nsc.netns, 'nsm-1')!;
    assert.deepEqual(after, before, 'client interface unchanged');
    assert.equal(dp.creates, 2);
  });
});
