/**
 * Linux-only checks of tunnel ends beyond the contract: where the UDP side lives, wireguard-go's life
 * (found by its socket, gone with its device, restarted when it died, an orphan left by a create cut short
 * collected), and rollback of a failed fresh create. Real netns: two nodes joined by a veth underlay.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { generateKeyPairSync } from 'node:crypto';
import { createLogger, silentLogger } from '../../core/log.js';
import { tunnelTmpName } from '../tunnel-spec.js';
import type { TunnelSpec } from '../types.js';
import { linuxDataPlane } from './index.js';
import { UNDERLAY_DEVS, addNetns, addNodes, delNodes, linkNames, linuxSkipReason, processesIn, sh, type TestNetns, type TestNodes } from './testenv.js';
import { readConfig, running, socketPath, startWireguardGo, wireguardPid } from './wireguard.js';

const skip = (await linuxSkipReason()) ?? (await sh('wireguard-go', ['--version']).then(() => undefined, () => 'needs wireguard-go (scripts/setup.sh installs it)'));
const log = process.env.NSM_TEST_LOG ? createLogger('tunnel-test', 'debug') : silentLogger;

interface Env {
  nodes: TestNodes;
  pa: TestNetns;
  pb: TestNetns;
}

async function env(t: TestContext): Promise<Env> {
  const nodes = await addNodes();
  const pa = await addNetns('pa');
  const pb = await addNetns('pb');
  t.after(() => delNodes(nodes, pa, pb));
  return { nodes, pa, pb };
}

function dataPlanes(e: Env) {
  const refs = (...all: TestNetns[]) => async () => all.map((n) => ({ url: n.inodeUrl, path: n.path }));
  const a = () => linuxDataPlane({ log }, { tunnelNetns: e.nodes.a.path, netns: refs(e.nodes.a, e.pa) });
  const b = () => linuxDataPlane({ log }, { tunnelNetns: e.nodes.b.path, netns: refs(e.nodes.b, e.pb) });
  return { a, b };
}

function b64(o: { export(o: { format: 'jwk' }): { d?: string; x?: string } }, f: 'd' | 'x'): string {
  return Buffer.from(o.export({ format: 'jwk' })[f]!, 'base64url').toString('base64');
}

function wgPair(e: Env, owner: string): [TunnelSpec, TunnelSpec] {
  const ka = generateKeyPairSync('x25519');
  const kb = generateKeyPairSync('x25519');
  const { ipA, ipB } = e.nodes;
  return [
    { owner, side: 'nsc', end: { netns: e.pa.inodeUrl, name: 'nsm-1', addrs: ['172.16.50.1/32'], routes: [{ prefix: '172.16.50.2/32' }] }, mtu: 1420, tunnel: { kind: 'wireguard', privateKey: b64(ka.privateKey, 'd'), peerPublicKey: b64(kb.publicKey, 'x'), localIp: ipA, listenPort: 51820, remoteIp: ipB, remotePort: 51821 } },
    { owner, side: 'nse', end: { netns: e.pb.inodeUrl, name: 'nse-1', addrs: ['172.16.50.2/32'], routes: [{ prefix: '172.16.50.1/32' }] }, mtu: 1420, tunnel: { kind: 'wireguard', privateKey: b64(kb.privateKey, 'd'), peerPublicKey: b64(ka.publicKey, 'x'), localIp: ipB, listenPort: 51821, remoteIp: ipA, remotePort: 51820 } },
  ];
}

function vxPair(e: Env, owner: string): [TunnelSpec, TunnelSpec] {
  const { ipA, ipB } = e.nodes;
  return [
    { owner, side: 'nsc', end: { netns: e.pa.inodeUrl, name: 'nsm-1', addrs: ['172.16.51.1/32'], routes: [{ prefix: '172.16.51.2/32' }] }, mtu: 1450, tunnel: { kind: 'vxlan', vni: 77, localIp: ipA, remoteIp: ipB, port: 4789 } },
    { owner, side: 'nse', end: { netns: e.pb.inodeUrl, name: 'nse-1', addrs: ['172.16.51.2/32'], routes: [{ prefix: '172.16.51.1/32' }] }, mtu: 1450, tunnel: { kind: 'vxlan', vni: 77, localIp: ipB, remoteIp: ipA, port: 4789 } },
  ];
}

async function ping(ns: TestNetns, addr: string): Promise<boolean> {
  for (let i = 0; i < 5; i++) if (await sh('ip', ['netns', 'exec', ns.name, 'ping', '-c1', '-W1', '-q', addr]).then(() => true, () => false)) return true;
  return false;
}

async function udpPorts(ns: TestNetns): Promise<number[]> {
  const { stdout } = await sh('ip', ['netns', 'exec', ns.name, 'ss', '-Hlun']);
  return [...new Set(stdout.split('\n').filter(Boolean).map((l) => Number(l.trim().split(/\s+/)[3]!.split(':').pop())))].sort(); // v4 and v6 sockets: one port
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(() => true, () => false);
}

async function leftovers(n: TestNodes): Promise<string[]> {
  const out: string[] = [];
  for (const ns of [n.a, n.b]) {
    for (const l of await linkNames(ns)) if (!UNDERLAY_DEVS.includes(l)) out.push(`link ${l}`);
    for (const pid of await processesIn(ns)) if (await running(pid)) out.push(`pid ${pid}`);
  }
  return out;
}

if (skip) {
  console.log(`# linux tunnel tests skipped: ${skip}`);
  test('linux tunnel ends', { skip }, () => undefined);
} else {
  test('linux vxlan: the UDP socket stays in the node netns; the pod holds only the device (link-netns), MTU as asked', async (t) => {
    const e = await env(t);
    const dp = dataPlanes(e);
    const [a, b] = vxPair(e, 'conn-udp');
    await dp.a().ensureTunnel(a);
    await dp.b().ensureTunnel(b);
    const link = (JSON.parse((await sh('ip', ['-n', e.pa.name, '-d', '-j', 'link', 'show', 'dev', 'nsm-1'])).stdout) as Array<Record<string, unknown>>)[0]!;
    assert.equal(typeof link.link_netnsid, 'number', 'the device\'s link netns is another netns (the node)');
    assert.equal(link.mtu, 1450);
    assert.deepEqual(await udpPorts(e.nodes.a), [4789]);
    assert.deepEqual(await udpPorts(e.pa), []);
    assert.ok(await ping(e.pa, '172.16.51.2'));
    assert.ok(await ping(e.pb, '172.16.51.1'));
  });

  test('linux: VXLAN and WireGuard over an IPv6 underlay, with IPv6 inside; a restarted forwarder adopts both', async (t) => {
    const e = await env(t);
    const dp = dataPlanes(e);
    const six = (s: TunnelSpec, i: number): TunnelSpec => {
      const mine = s.side === 'nsc' ? e.nodes.ip6A : e.nodes.ip6B;
      const peer = s.side === 'nsc' ? e.nodes.ip6B : e.nodes.ip6A;
      const [me, other] = s.side === 'nsc' ? [1, 2] : [2, 1];
      const end = { ...s.end, name: `${s.end.name.slice(0, 3)}-${i}`, addrs: [`fd60:${i}::${me}/128`], routes: [{ prefix: `fd60:${i}::${other}/128` }] };
      return { ...s, end, tunnel: { ...s.tunnel, localIp: mine, remoteIp: peer } };
    };
    const [va, vb] = vxPair(e, 'conn-v6-vx').map((s) => six(s, 1)) as [TunnelSpec, TunnelSpec];
    const [wa, wb] = wgPair(e, 'conn-v6-wg').map((s) => six(s, 2)) as [TunnelSpec, TunnelSpec];
    const A = dp.a();
    const B = dp.b();
    const first = [await A.ensureTunnel(va), await A.ensureTunnel(wa)];
    await B.ensureTunnel(vb);
    await B.ensureTunnel(wb);
    assert.ok(await ping(e.pa, 'fd60:1::2'), 'ping across VXLAN over IPv6');
    assert.ok(await ping(e.pa, 'fd60:2::2'), 'ping across WireGuard over IPv6');
    const again = dp.a();
    const found = await again.start();
    assert.deepEqual(found.map((l) => [l.owner, l.kind, l.tunnel]).sort(), [['conn-v6-vx', 'vxlan', { kind: 'vxlan', vni: 77, port: 4789 }], ['conn-v6-wg', 'tun', { kind: 'wireguard', port: 51820 }]]);
    const adopted = [await again.ensureTunnel(va), await again.ensureTunnel(wa)];
    assert.deepEqual(adopted.map((s) => [s.actions, s.end.ifindex]), first.map((s) => [[], s.end.ifindex]));
    assert.deepEqual((await again.collectOrphans()).removed, []);
    assert.ok(await ping(e.pb, 'fd60:2::1'));
  });

  test('linux: a scoped forwarder never collects another scope\'s tunnel end, whose name stays taken', async (t) => {
    const e = await env(t);
    const refs = async () => [e.nodes.a, e.pa].map((n) => ({ url: n.inodeUrl, path: n.path }));
    const one = linuxDataPlane({ log }, { tunnelNetns: e.nodes.a.path, netns: refs, scope: 'fwd-one' });
    const two = linuxDataPlane({ log }, { tunnelNetns: e.nodes.a.path, netns: refs, scope: 'fwd-two' });
    const [a] = wgPair(e, 'conn-1');
    await one.ensureTunnel(a);
    assert.deepEqual(await two.start(), []);
    await two.collectOrphans();
    await two.sweepOrphans();
    await two.sweepOrphans();
    assert.deepEqual(await linkNames(e.pa), ['nsm-1']);
    await assert.rejects(two.ensureTunnel({ ...a, owner: 'conn-2' }), { name: 'AlreadyExistsError' });
    assert.equal(await two.tunnelPrivateKey('conn-1'), undefined, 'another scope\'s key is not this one\'s');
    assert.equal(await one.tunnelPrivateKey('conn-1'), a.tunnel.kind === 'wireguard' ? a.tunnel.privateKey : '');
    await one.removeTunnel(a);
    assert.deepEqual(await leftovers(e.nodes), []);
  });

  test('linux wireguard: wireguard-go runs in the node netns, found by its socket; remove ends it and its socket', async (t) => {
    const e = await env(t);
    const dp = dataPlanes(e);
    const [a, b] = wgPair(e, 'conn-wg-life');
    const A = dp.a();
    await A.ensureTunnel(a);
    await dp.b().ensureTunnel(b);
    const dev = tunnelTmpName('wireguard', a.owner, 'nsc');
    const pid = await wireguardPid(dev);
    assert.ok(pid !== undefined && (await running(pid)));
    assert.deepEqual(await processesIn(e.nodes.a), [pid]);
    assert.deepEqual(await udpPorts(e.nodes.a), [51820]);
    assert.deepEqual(await udpPorts(e.pa), []);
    assert.ok(await ping(e.pa, '172.16.50.2'));
    await A.removeTunnel(a);
    assert.equal(await running(pid), false);
    assert.equal(await exists(socketPath(dev)), false);
    assert.deepEqual(await linkNames(e.pa), []);
  });

  test('linux wireguard: a wireguard-go that died (device gone with it, socket file left) is restarted by ensure; ping works again', async (t) => {
    const e = await env(t);
    const dp = dataPlanes(e);
    const [a, b] = wgPair(e, 'conn-wg-dead');
    const A = dp.a();
    await A.ensureTunnel(a);
    await dp.b().ensureTunnel(b);
    const dev = tunnelTmpName('wireguard', a.owner, 'nsc');
    const pid = (await wireguardPid(dev))!;
    process.kill(pid, 'SIGKILL'); // a pid this test's data plane started
    for (let i = 0; i < 100 && (await linkNames(e.pa)).length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await linkNames(e.pa), [], 'the tun went with its process');
    assert.ok(await exists(socketPath(dev)), 'SIGKILL leaves the socket file');
    const st = await A.ensureTunnel(a);
    assert.ok(st.end.created, st.actions.join(', '));
    assert.ok(st.actions.includes(`remove socket ${socketPath(dev)}`), st.actions.join(', '));
    assert.equal((await readConfig(dev))?.listenPort, 51820);
    assert.ok(await ping(e.pa, '172.16.50.2'));
    assert.equal(await A.tunnelPrivateKey(a.owner), a.tunnel.kind === 'wireguard' ? a.tunnel.privateKey : '');
  });

  test('linux wireguard: a create cut short (device still in the node netns) is found by start() and collected with its process', async (t) => {
    const e = await env(t);
    const dp = dataPlanes(e);
    const owner = 'conn-cut-short';
    const dev = tunnelTmpName('wireguard', owner, 'nsc');
    await startWireguardGo(e.nodes.a.path, dev);
    await sh('ip', ['-n', e.nodes.a.name, 'link', 'set', 'dev', dev, 'alias', `nsm-ts:${owner}:nsc`]);
    const pid = (await wireguardPid(dev))!;
    const A = dp.a();
    const found = await A.start();
    assert.deepEqual(found.map((l) => [l.owner, l.name, l.netns, l.kind]), [[owner, dev, e.nodes.a.inodeUrl, 'tun']]);
    const r = await A.collectOrphans();
    assert.deepEqual([r.removed.length, r.failed], [1, []]);
    assert.equal(await running(pid), false);
    assert.equal(await exists(socketPath(dev)), false);
    assert.deepEqual(await leftovers(e.nodes), []);
    // Without the alias (cut short earlier), an ensure of that owner clears it before it creates.
    await startWireguardGo(e.nodes.a.path, dev);
    const pid2 = (await wireguardPid(dev))!;
    const [a] = wgPair(e, owner);
    const st = await A.ensureTunnel(a);
    assert.ok(st.actions.some((x) => x.startsWith(`tunnel netns: delete tun ${dev}`)), st.actions.join(', '));
    assert.equal(await running(pid2), false);
    assert.equal((await processesIn(e.nodes.a)).length, 1);
    await A.removeTunnel(a);
    assert.deepEqual(await leftovers(e.nodes), []);
    // And a remove of that owner clears one too (the pod end never got there).
    await startWireguardGo(e.nodes.a.path, dev);
    await sh('ip', ['-n', e.nodes.a.name, 'link', 'set', 'dev', dev, 'alias', `nsm-ts:${owner}:nsc`]);
    const pid3 = (await wireguardPid(dev))!;
    await A.removeTunnel(a);
    assert.equal(await running(pid3), false);
    assert.equal(await exists(socketPath(dev)), false);
    assert.deepEqual(await leftovers(e.nodes), []);
  });

  test('linux: a fresh create failing in the pod is rolled back (no device, no wireguard-go, no socket) and names the step', async (t) => {
    const e = await env(t);
    const dp = dataPlanes(e);
    const A = dp.a();
    for (const [a] of [vxPair(e, 'conn-rb-vx'), wgPair(e, 'conn-rb-wg')]) {
      const own = a.end.addrs[0]!.split('/')[0]!;
      const bad: TunnelSpec = { ...a, end: { ...a.end, routes: [{ prefix: '10.50.0.0/16', via: own }] } };
      await assert.rejects(A.ensureTunnel(bad), (err: Error & { step?: string }) => err.name === 'DataplaneError' && err.step === `add route 10.50.0.0/16 via ${own}`);
      assert.deepEqual(await linkNames(e.pa), []);
      assert.deepEqual(await leftovers(e.nodes), []);
      assert.equal(await exists(socketPath(tunnelTmpName('wireguard', a.owner, 'nsc'))), false);
      assert.deepEqual(A.held(), []);
    }
  });
}
