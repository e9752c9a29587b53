import { test } from 'node:test';
import assert from 'node:assert/strict';
import { meshLayout, podNode } from './layout.js';
import { hostConflict, infraAlias, INFRA_NETNS_RE, MAX_NODES, meshTag, parseNodeCount, parseUnderlayCidr, planTopology, topologyNetns } from './nodes.js';
import { runPaths } from './paths.js';
import type { MeshState } from './state.js';

test('--nodes: a whole number from 1 to MAX_NODES; anything else names the flag', () => {
  for (const [raw, want] of [['1', 1], ['3', 3], [String(MAX_NODES), MAX_NODES], [' 2 ', 2]] as const) assert.equal(parseNodeCount(raw), want);
  for (const raw of ['0', '9', '99', '-1', '2.5', '', 'x', '1e1', '0x2']) {
    assert.throws(() => parseNodeCount(raw), (e: Error) => e.name === 'InvalidArgumentError' && /--nodes/.test(e.message), raw);
  }
});

test('--underlay-cidr: a private IPv4 network, /16../28, host bits clear, room for the nodes', () => {
  assert.equal(parseUnderlayCidr('10.250.0.0/24', 8).prefix, 24);
  assert.equal(parseUnderlayCidr('192.168.77.16/28', 8).prefix, 28);
  assert.equal(parseUnderlayCidr('172.20.0.0/16', 8).prefix, 16);
  const bad: Array<[string, number, RegExp]> = [
    ['10.250.0.1/24', 2, /host bits/],
    ['8.8.8.0/24', 2, /not a private network/],
    ['192.0.2.0/24', 2, /not a private network/],
    ['172.0.0.0/8', 2, /prefix must be/],
    ['10.0.0.0/15', 2, /prefix must be/],
    ['10.0.0.0/29', 2, /prefix must be/],
    ['fd00::/64', 2, /IPv4/],
    ['10.0.0.0', 2, /not a CIDR/],
    ['nonsense', 2, /not a CIDR/],
  ];
  for (const [raw, n, why] of bad) {
    assert.throws(() => parseUnderlayCidr(raw, n), (e: Error) => e.name === 'InvalidArgumentError' && /--underlay-cidr/.test(e.message) && why.test(e.message), raw);
  }
});

test('topology: netns names tagged by run dir, node-<i> at the i-th address, distinct per run dir', () => {
  const t = planTopology('/tmp/run-a', 3, '10.9.0.0/24');
  assert.match(t.tag, /^nsm[0-9a-f]{6}$/);
  assert.equal(t.tag, meshTag('/tmp/run-a'));
  assert.notEqual(t.tag, meshTag('/tmp/run-b'));
  assert.deepEqual(
    t.nodes.map((n) => [n.name, n.netns, n.address, n.addressCidr, n.bridgePort]),
    [
      ['node-1', `${t.tag}-node-1`, '10.9.0.1', '10.9.0.1/24', 'n1'],
      ['node-2', `${t.tag}-node-2`, '10.9.0.2', '10.9.0.2/24', 'n2'],
      ['node-3', `${t.tag}-node-3`, '10.9.0.3', '10.9.0.3/24', 'n3'],
    ],
  );
  assert.equal(t.underlayNetns, `${t.tag}-ul`);
  assert.equal(t.cidr, '10.9.0.0/24');
  for (const ns of topologyNetns(t)) assert.match(ns, INFRA_NETNS_RE);
  assert.doesNotMatch('nsc-kernel', INFRA_NETNS_RE);
  assert.throws(() => planTopology('/r', 0), /--nodes/);
});

test('the underlay alias names the run dir and the program, within the kernel limit', () => {
  assert.equal(infraAlias('/tmp/r', '/w/dist/src/cli/main.js'), 'nsm-mesh:{"run":"/tmp/r","nsm":"/w/dist/src/cli/main.js"}');
  const long = infraAlias('/tmp/r', `/${'x'.repeat(300)}`);
  assert.equal(long, 'nsm-mesh:{"run":"/tmp/r"}');
});

test('host conflict: an address or route of the host netns overlapping the underlay', () => {
  const addrs = [
    { ifname: 'lo', local: '127.0.0.1', prefixlen: 8 },
    { ifname: 'eth0', local: '10.250.0.5', prefixlen: 16 },
  ];
  assert.match(hostConflict('10.250.0.0/24', addrs, []) ?? '', /10\.250\.0\.5\/16 of eth0/);
  assert.equal(hostConflict('10.251.0.0/24', [{ ifname: 'eth0', local: '192.0.2.2', prefixlen: 24 }], []), undefined);
  const routes = [{ dst: 'default' }, { dst: '10.0.0.0/8', dev: 'wg0' }, { dst: '127.0.0.1', type: 'local' }];
  assert.match(hostConflict('10.250.0.0/24', [], routes) ?? '', /host route 10\.0\.0\.0\/8 dev wg0/);
  assert.equal(hostConflict('192.168.5.0/24', [], routes), undefined);
  assert.match(hostConflict('192.168.5.0/24', [], [{ dst: '192.168.5.7' }]) ?? '', /192\.168\.5\.7/);
});

test('layout: one node keeps the host-netns layout; nodes get their own netns, sockets, tcp URLs and tunnel IP', () => {
  const paths = runPaths('/r');
  const one = meshLayout(paths, 'h', 'mtls');
  assert.deepEqual(
    one.map((s) => [s.id, s.netns, s.socket, s.env.NODE_NAME]),
    [
      ['registry', undefined, '/r/registry.sock', 'h'],
      ['nsmgr', undefined, '/r/nsm.io.sock', 'h'],
      ['forwarder', undefined, '/r/forwarder.sock', 'h'],
    ],
  );
  const t = planTopology('/r', 2, '10.9.0.0/24');
  const two = meshLayout(paths, 'h', 'insecure', t);
  const env = (id: string) => two.find((s) => s.id === id)!.env;
  assert.deepEqual(
    two.map((s) => [s.id, s.node, s.netns, s.socket, s.phase]),
    [
      ['registry', 'node-1', `${t.tag}-node-1`, '/r/registry.sock', 0],
      ['node-1/nsmgr', 'node-1', `${t.tag}-node-1`, '/r/nodes/node-1/nsm.io.sock', 1],
      ['node-2/nsmgr', 'node-2', `${t.tag}-node-2`, '/r/nodes/node-2/nsm.io.sock', 1],
      ['node-1/forwarder', 'node-1', `${t.tag}-node-1`, '/r/nodes/node-1/forwarder.sock', 2],
      ['node-2/forwarder', 'node-2', `${t.tag}-node-2`, '/r/nodes/node-2/forwarder.sock', 2],
    ],
  );
  assert.deepEqual(env('registry'), { NSM_LISTEN_ON: 'unix:///r/registry.sock,tcp://10.9.0.1:5002', NODE_NAME: 'node-1', NSM_INSECURE: 'true' });
  assert.equal(env('node-1/nsmgr').NSM_REGISTRY_URL, 'unix:///r/registry.sock');
  assert.deepEqual(env('node-2/nsmgr'), {
    NSM_LISTEN_ON: 'unix:///r/nodes/node-2/nsm.io.sock,tcp://10.9.0.2:5001',
    NSM_REGISTRY_URL: 'tcp://10.9.0.1:5002',
    NSM_NAME: 'nsmgr-node-2',
    NODE_NAME: 'node-2',
    NSM_INSECURE: 'true',
  });
  assert.deepEqual(env('node-2/forwarder'), {
    NSM_CONNECT_TO: 'unix:///r/nodes/node-2/nsm.io.sock',
    NSM_LISTEN_ON: 'unix:///r/nodes/node-2/forwarder.sock',
    NSM_NAME: `forwarder-node-2.${t.tag}`,
    NODE_NAME: 'node-2',
    NSM_TUNNEL_IP: '10.9.0.2',
    NSM_INSECURE: 'true',
  });
  assert.equal(meshLayout(paths, 'h', 'mtls', t)[0].env.SPIFFE_ENDPOINT_SOCKET, 'unix:///r/agent.sock');
});

test('a pod node: default the first, the node socket in a mesh of nodes; an unknown one names --node and lists the nodes', () => {
  const paths = runPaths('/r');
  const one: MeshState = { version: 1, runDir: '/r', hostname: 'h', components: {}, pods: {} };
  assert.deepEqual(podNode(paths, one, 'h', undefined), { node: 'h', nsmgrSocket: '/r/nsm.io.sock' });
  const nodes: MeshState = { ...one, topology: planTopology('/r', 3) };
  assert.deepEqual(podNode(paths, nodes, 'h', undefined), { node: 'node-1', nsmgrSocket: '/r/nodes/node-1/nsm.io.sock' });
  assert.deepEqual(podNode(paths, nodes, 'h', 'node-3'), { node: 'node-3', nsmgrSocket: '/r/nodes/node-3/nsm.io.sock' });
  assert.throws(
    () => podNode(paths, nodes, 'h', 'node-4'),
    (e: Error) => e.name === 'InvalidArgumentError' && /--node/.test(e.message) && /node-1, node-2, node-3/.test(e.message) && /node-4/.test(e.message),
  );
  assert.throws(() => podNode(paths, one, 'h', 'node-1'), /--node.*its nodes: h/);
});
