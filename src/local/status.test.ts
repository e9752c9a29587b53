import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Connection } from '../api/gen/connection.js';
import { signToken } from '../security/token.js';
import { connectionStatus, formatStatus, segmentStatus, type MeshStatus } from './status.js';

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
    components: [
      { name: 'nsmgr', state: 'up', health: 'SERVING', pid: 11, restarts: 0, uptimeS: 5, security: 'mtls', spiffeId: NSMGR, svidExpires: '2030-01-01T00:00:00.000Z' },
    ],
    services: [],
    endpoints: [],
    connections: [
      {
        ...connectionStatus(Connection.fromPartial({ id: 'c1', networkService: 'svc' })),
        segments: [{ index: 0, name: 'nsc', id: 'c1', sub: NSC, aud: [NSMGR], tokenExpires: '2030-01-01T00:00:00.000Z' }],
      },
    ],
    pods: [],
    errors: [],
  };
  const text = formatStatus(base);
  assert.match(text, /^security: mtls \(trust domain nsm\.local, Workload API unix:\/\/\/r\/agent\.sock; this status as spiffe:\/\/nsm\.local\/node\/h\/cli/m);
  assert.match(text, /^nsmgr\s+up\s+11\s+0\s+5s\s+mtls\s+spiffe:\/\/nsm\.local\/node\/h\/nsmgr\s+2030-01-01T00:00:00\.000Z/m);
  assert.match(text, /^PATH of c1:\n#\s+NAME\s+SUB\s+AUD\s+TOKEN EXPIRES\n0\s+nsc\s+spiffe:\/\/nsm\.local\/ns\/nsc-kernel\/nsc\s+spiffe:\/\/nsm\.local\/node\/h\/nsmgr/m);
  assert.match(formatStatus({ ...base, security: 'insecure' }), /^security: INSECURE \(nsm up --insecure\)/m);
});
