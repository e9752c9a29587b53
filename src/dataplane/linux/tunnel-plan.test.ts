import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AlreadyExistsError } from '../../core/errors.js';
import { normalizeTunnelSpec } from '../tunnel-spec.js';
import { PING_GROUP_RANGE } from './ip.js';
import { parseLinks, type KLink, type NetnsState } from './state.js';
import { planTunnel, podLines, vxlanCreateLine } from './tunnel-plan.js';
import { parseGet, setRequest, wgDiff, type WgConfig } from './wireguard.js';

const K1 = Buffer.alloc(32, 1).toString('base64');
const K2 = Buffer.alloc(32, 2).toString('base64');
const end = { netns: 'p', name: 'nsm-1', addrs: ['172.16.1.1/32'], routes: [{ prefix: '172.16.1.2/32' }] };
const vx = normalizeTunnelSpec({ owner: 'c1', side: 'nsc', end, tunnel: { kind: 'vxlan', vni: 10, localIp: '10.0.0.1', remoteIp: '10.0.0.2', port: 4789 }, mtu: 1450 });
const wg = normalizeTunnelSpec({ owner: 'c1', side: 'nsc', end, tunnel: { kind: 'wireguard', privateKey: K1, peerPublicKey: K2, localIp: '10.0.0.1', listenPort: 51820, remoteIp: '10.0.0.2', remotePort: 51821 } });

/** What `ip -d -j link show` prints for a healthy VXLAN end (trimmed), parsed as the data plane does. */
function vxlanLink(over: Record<string, unknown> = {}, data: Record<string, unknown> = {}): KLink {
  const json = [{
    ifindex: 4, ifname: 'nsm-1', flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'], mtu: 1450, operstate: 'UNKNOWN', address: '02:aa:bb:cc:dd:ee', link_netnsid: 0, ifalias: 'nsm-ts:c1:nsc',
    linkinfo: { info_kind: 'vxlan', info_data: { id: 10, remote: '10.0.0.2', local: '10.0.0.1', port: 4789, ...data } },
    addr_info: [{ family: 'inet', local: '172.16.1.1', prefixlen: 32, scope: 'global' }],
    ...over,
  }];
  return parseLinks(json).get('nsm-1')!;
}

function ns(l: KLink | undefined): NetnsState {
  return { links: new Map(l ? [[l.name, l]] : []), routes: l ? [{ family: 4, prefix: '172.16.1.2/32', dev: l.name, protocol: 'boot', scope: 'link', onlink: false }] : [], pingGroupRange: PING_GROUP_RANGE };
}

const none = () => false;
const goodWg: WgConfig = { privateKey: K1, listenPort: 51820, peers: [{ publicKey: K2, endpoint: '10.0.0.2:51821', allowedIps: ['0.0.0.0/0', '::/0'], keepalive: 10 }] };

test('tunnel plan: the kernel\'s VXLAN parameters are parsed', () => {
  assert.deepEqual(vxlanLink().vxlan, { vni: 10, local: '10.0.0.1', remote: '10.0.0.2', port: 4789 });
});

test('tunnel plan: decisions from the pod netns as read', () => {
  const cases: Array<[string, NetnsState, WgConfig | undefined, typeof vx, string, string[]]> = [
    ['nothing there', ns(undefined), undefined, vx, 'create', []],
    ['healthy vxlan', ns(vxlanLink()), undefined, vx, 'converge', []],
    ['vxlan set down', ns(vxlanLink({ flags: ['BROADCAST'] })), undefined, vx, 'converge', ['nsc: set up']],
    ['vxlan mtu drifted', ns(vxlanLink({ mtu: 1500 })), undefined, vx, 'converge', ['nsc: set mtu 1450']],
    ['vxlan other vni', ns(vxlanLink({}, { id: 11 })), undefined, vx, 'recreate', []],
    ['vxlan other remote', ns(vxlanLink({}, { remote: '10.0.0.3' })), undefined, vx, 'recreate', []],
    ['vxlan other port', ns(vxlanLink({}, { port: 4790 })), undefined, vx, 'recreate', []],
    ['orphan of another owner', ns(vxlanLink({ ifalias: 'nsm-ts:old:nsc' })), undefined, vx, 'recreate', []],
    ['a vxlan where a wireguard end is wanted', ns(vxlanLink()), undefined, wg, 'recreate', []],
    ['our tun, no wireguard-go answers', ns(vxlanLink({ linkinfo: { info_kind: 'tun' } })), undefined, wg, 'recreate', []],
    ['our tun, converged', ns(vxlanLink({ linkinfo: { info_kind: 'tun' }, mtu: 1500 })), goodWg, wg, 'converge', []],
    ['our tun, peer moved', ns(vxlanLink({ linkinfo: { info_kind: 'tun' }, mtu: 1500 })), { ...goodWg, peers: [{ ...goodWg.peers[0]!, endpoint: '10.0.0.9:1' }] }, wg, 'converge', ['set wireguard peer 10.0.0.2:51821']],
    ['our tun, port and key differ', ns(vxlanLink({ linkinfo: { info_kind: 'tun' }, mtu: 1500 })), { ...goodWg, privateKey: K2, listenPort: 1 }, wg, 'converge', ['set wireguard private key', 'set wireguard listen port 51820']],
  ];
  for (const [label, s, cfg, w, kind, actions] of cases) {
    const p = planTunnel(w, s, cfg, none);
    assert.equal(p.kind, kind, label);
    if (p.kind === 'converge') assert.deepEqual(p.actions, actions, label);
  }
});

test('tunnel plan: a foreign link or another live connection\'s → AlreadyExists', () => {
  assert.throws(() => planTunnel(vx, ns(vxlanLink({ ifalias: undefined })), undefined, none), AlreadyExistsError);
  assert.throws(() => planTunnel(vx, ns(vxlanLink({ ifalias: 'nsm-ts:c2:nsc' })), undefined, (o) => o === 'c2'), (e: Error) => e instanceof AlreadyExistsError && e.message.includes('c2'));
});

test('tunnel plan: create lines — VXLAN in the tunnel netns, then rename and configure in the pod', () => {
  assert.equal(vxlanCreateLine('nsmvx0', vx.tunnel as never, '02:00:00:00:00:01').cmd, 'link add nsmvx0 address 02:00:00:00:00:01 type vxlan id 10 local 10.0.0.1 remote 10.0.0.2 dstport 4789');
  assert.deepEqual(podLines('nsmvx0', vx).map((l) => l.cmd), [
    'link set dev nsmvx0 name nsm-1',
    'link set dev nsm-1 mtu 1450',
    'link set dev nsm-1 alias nsm-ts:c1:nsc',
    'addr replace 172.16.1.1/32 dev nsm-1',
    'link set dev nsm-1 up',
    'route replace 172.16.1.2/32 dev nsm-1 scope link',
    'link show dev nsm-1',
  ]);
});

test('wireguard UAPI: set request and get parsing agree', () => {
  const req = setRequest(wg.tunnel as never);
  assert.ok(req.startsWith('set=1\n') && req.endsWith('\n\n'));
  assert.ok(req.includes(`private_key=${Buffer.alloc(32, 1).toString('hex')}\n`));
  assert.ok(req.includes('endpoint=10.0.0.2:51821\n') && req.includes('replace_peers=true\n') && req.includes('persistent_keepalive_interval=10\n'));
  const got = parseGet(
    `private_key=${Buffer.alloc(32, 1).toString('hex')}\nlisten_port=51820\npublic_key=${Buffer.alloc(32, 2).toString('hex')}\npreshared_key=${'0'.repeat(64)}\nprotocol_version=1\nendpoint=10.0.0.2:51821\nlast_handshake_time_sec=0\ntx_bytes=0\npersistent_keepalive_interval=10\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0\n`,
  );
  assert.deepEqual(got, goodWg);
  assert.deepEqual(wgDiff(got, wg.tunnel as never), []);
  assert.deepEqual(wgDiff({ peers: [] }, wg.tunnel as never), ['set wireguard private key', 'set wireguard listen port 51820', 'set wireguard peer 10.0.0.2:51821']);
  // The same peer key with another endpoint: updated in place (its session survives), nothing else sent.
  const moved = setRequest(wg.tunnel as never, { ...goodWg, peers: [{ ...goodWg.peers[0]!, endpoint: '10.0.0.9:1' }] });
  assert.ok(!moved.includes('replace_peers') && !moved.includes('private_key') && !moved.includes('listen_port'), moved);
  assert.ok(moved.includes('endpoint=10.0.0.2:51821\n'));
  // A new peer key replaces the peers.
  assert.ok(setRequest(wg.tunnel as never, { ...goodWg, peers: [{ ...goodWg.peers[0]!, publicKey: K1 }] }).includes('replace_peers=true\n'));
});
