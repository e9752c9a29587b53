import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Connection } from '../api/gen/connection.js';
import { signToken } from '../security/token.js';
import { connectionStatus, formatStatus, mergeConnections, segmentStatus, statusFileConnections, type MeshStatus } from './status.js';

const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const NSC = 'spiffe://nsm.local/ns/nsc-kernel/nsc';
const NSMGR = 'spiffe://nsm.local/node/h/nsmgr';
const FWD = 'spiffe://nsm.local/node/h/forwarder';

test('path segments: sub, aud and exp decoded from each token (not verified); a bad token names why', () => {
  const exp = 1_900_000_000;
  const conn = Connection.fromPartial({
    id: 'c1',
    networkService: 'svc',
    path: {
      index: 0,
      pathSegments: [
        { name: 'nsc', id: 'c1', token: signToken({ sub: NSC, aud: [NSMGR], exp }, key) },
        { name: 'nsmgr-h', id: 's2', token: signToken({ sub: NSMGR, aud: [FWD], exp }, key) },
        { name: 'forwarder-h', id: 's3', token: '' },
      ],
    },
  });
  const s = connectionStatus(conn);
  assert.deepEqual(
    s.segments.map((g) => [g.index, g.name, g.sub, g.aud, g.tokenExpires]),
    [
      [0, 'nsc', NSC, [NSMGR], new Date(exp * 1000).toISOString()],
      [1, 'nsmgr-h', NSMGR, [FWD], new Date(exp * 1000).toISOString()],
      [2, 'forwarder-h', null, [], null],
    ],
  );
  assert.match(s.segments[2].tokenError ?? '', /empty/);
  assert.equal(s.path, 'nsc -> nsmgr-h -> forwarder-h');
  // an HS256 token of an insecure mesh decodes the same way (its aud is a string there, or absent)
  const hs = `${Buffer.from('{"alg":"HS256"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'x', aud: 'y' })).toString('base64url')}.c2ln`;
  assert.deepEqual(segmentStatus({ name: 'n', id: 'i', token: hs, expires: undefined, metrics: {} }, 4).aud, ['y']);
});

test('the table shows the security mode, each component SPIFFE ID and SVID expiry, and each connection path with sub/aud', () => {
  const base: MeshStatus = {
    runDir: '/r',
    up: true,
    supervisor: { pid: 10, uptimeS: 5 },
    security: 'mtls',
    trustDomain: 'nsm.local',
    workloadApi: 'unix:///r/agent.sock',
    caller: 'spiffe://nsm.local/node/h/cli (issued from /r/ca)',
    nodes: [],
    underlay: null,
    components: [
      { id: 'nsmgr', name: 'nsmgr', node: null, state: 'up', health: 'SERVING', pid: 11, restarts: 0, uptimeS: 5, security: 'mtls', spiffeId: NSMGR, svidExpires: '2030-01-01T00:00:00.000Z' },
    ],
    services: [],
    endpoints: [],
    connections: [
      {
        ...connectionStatus(Connection.fromPartial({ id: 'c1', networkService: 'svc' })),
        segments: [{ index: 0, name: 'nsc', id: 'c1', sub: NSC, aud: [NSMGR], tokenExpires: '2030-01-01T00:00:00.000Z', mechanism: 'KERNEL' }],
      },
    ],
    pods: [],
    errors: [],
  };
  const text = formatStatus(base);
  assert.match(text, /^security: mtls \(trust domain nsm\.local, Workload API unix:\/\/\/r\/agent\.sock; this status as spiffe:\/\/nsm\.local\/node\/h\/cli/m);
  assert.match(text, /^nsmgr\s+up\s+11\s+0\s+5s\s+mtls\s+spiffe:\/\/nsm\.local\/node\/h\/nsmgr\s+2030-01-01T00:00:00\.000Z/m);
  assert.match(text, /^PATH of c1:\n#\s+NAME\s+SUB\s+AUD\s+TOKEN EXPIRES\s+MECHANISM\n0\s+nsc\s+spiffe:\/\/nsm\.local\/ns\/nsc-kernel\/nsc\s+spiffe:\/\/nsm\.local\/node\/h\/nsmgr\s+2030\S+\s+KERNEL$/m);
  assert.match(formatStatus({ ...base, security: 'insecure' }), /^security: INSECURE \(nsm up --insecure\)/m);
});

test('connections across nodes: one entry per client connection, the longest path, each hop\'s mechanism, the reporting nodes', () => {
  const segs = ['nsc', 'nsmgr-node-1', 'forwarder-node-1', 'nsmgr-node-2', 'forwarder-node-2', 'nse'].map((name, i) => ({ name, id: i === 0 ? 'c1' : `s${i}`, token: '' }));
  const view = (index: number, mech: string, upTo: number) =>
    Connection.fromPartial({ id: segs[index].id, networkService: 'svc', mechanism: { type: mech, cls: index < 3 ? 'LOCAL' : 'REMOTE' }, path: { index, pathSegments: segs.slice(0, upTo) } });
  const merged = mergeConnections([
    { connection: view(1, 'KERNEL', 6), node: 'node-1' },
    { connection: view(3, 'VXLAN', 6), node: 'node-2' },
    { connection: view(0, 'KERNEL', 6) },
    { connection: Connection.fromPartial({ id: 'other', networkService: 'svc2', path: { index: 1, pathSegments: [{ name: 'x', id: 'o1' }, { name: 'nsmgr-node-1', id: 'o2' }] } }), node: 'node-1' },
  ]);
  assert.equal(merged.length, 2);
  const c = merged.find((m) => m.service === 'svc')!;
  assert.deepEqual(c.nodes, ['node-1', 'node-2']);
  assert.deepEqual(
    c.segments.map((g) => [g.name, g.mechanism]),
    [
      ['nsc', 'KERNEL'],
      ['nsmgr-node-1', 'KERNEL'],
      ['forwarder-node-1', null],
      ['nsmgr-node-2', 'VXLAN'],
      ['forwarder-node-2', null],
      ['nse', null],
    ],
  );
  assert.deepEqual(statusFileConnections({ connections: [{ id: 'c1', connection: Connection.toJSON(view(0, 'KERNEL', 2)) }, { id: 'x' }] }).map((x) => x.mechanism?.type), ['KERNEL']);
  assert.deepEqual(statusFileConnections(null), []);
});

test('the table of a mesh of nodes: underlay, nodes, component ids, the connection\'s nodes, each pod\'s node', () => {
  const s: MeshStatus = {
    runDir: '/r',
    up: true,
    supervisor: { pid: 10, uptimeS: 5 },
    security: 'insecure',
    trustDomain: null,
    workloadApi: null,
    caller: null,
    nodes: [{ name: 'node-2', netns: 'nsmabcdef-node-2', netnsExists: true, address: '10.250.0.2', nsmgrUrl: 'tcp://10.250.0.2:5001', nsmgr: 'up', forwarder: 'restarting' }],
    underlay: { netns: 'nsmabcdef-ul', netnsExists: true, bridge: 'br0', cidr: '10.250.0.0/24' },
    components: [{ id: 'node-2/nsmgr', name: 'nsmgr', node: 'node-2', state: 'up', health: 'SERVING', pid: 11, restarts: 0, uptimeS: 5, security: 'insecure', spiffeId: null, svidExpires: null }],
    services: [],
    endpoints: [],
    connections: [{ ...connectionStatus(Connection.fromPartial({ id: 'c1', networkService: 'svc' })), nodes: ['node-1', 'node-2'] }],
    pods: [{ pod: 'p', node: 'node-2', netns: 'p', netnsExists: true, component: 'nse', name: 'p', pid: 12, running: true, uptimeS: 3, lastHeal: null, status: null }],
    errors: [],
  };
  const text = formatStatus(s);
  assert.match(text, /^underlay: 10\.250\.0\.0\/24, bridge br0 in netns nsmabcdef-ul$/m);
  assert.match(text, /^node-2\s+nsmabcdef-node-2\s+10\.250\.0\.2\s+up\s+restarting\s+tcp:\/\/10\.250\.0\.2:5001$/m);
  assert.match(text, /^node-2\/nsmgr\s+up\s+11/m);
  assert.match(text, /^c1\s+svc\s+\S+\s+-\s+-\s+node-1,node-2/m);
  assert.match(text, /^p\s+node-2\s+nse\s+p\s+12\s+running/m);
});
