import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Attestation, ProcessFacts } from './attest.js';
import { identityFor, isPathSegment, workloadName, type MeshKnowledge } from './identity-policy.js';

const HOST = 'inode://4/4026531840';
const POD_A = 'inode://4/4026532001';
const POD_B = 'inode://4/4026532002';
const OTHER = 'inode://4/4026532999';

const mesh: MeshKnowledge = {
  trustDomain: 'nsm.local',
  node: 'node-1',
  components: [
    { pid: 100, startTime: 5000, name: 'nsmgr' },
    { pid: 101, startTime: 5001, name: 'forwarder' },
  ],
  pods: new Map([
    [POD_A, 'nsc-pod'],
    [POD_B, 'nse-pod'],
  ]),
};

const proc = (over: Partial<ProcessFacts>): ProcessFacts => ({
  pid: 200,
  uid: 0,
  gid: 0,
  exe: '/usr/bin/node',
  netns: POD_A,
  startTime: 9000,
  cmdline: ['/usr/bin/node', '/opt/nsm/dist/src/cli/main.js', 'nsc'],
  ...over,
});

const att = (socketNetns: string, ...holders: ProcessFacts[]): Attestation => ({ socketNetns, peerInode: 777, holders });

describe('identity policy', () => {
  const cases: Array<{ name: string; att: Attestation; mesh?: MeshKnowledge; id?: string; refused?: RegExp }> = [
    { name: 'supervised component by pid + start time', att: att(HOST, proc({ pid: 100, startTime: 5000, netns: HOST })), id: 'spiffe://nsm.local/node/node-1/nsmgr' },
    {
      name: 'supervised component of another node (a mesh of nodes): its own node',
      att: att(OTHER, proc({ pid: 102, startTime: 5002, netns: OTHER })),
      mesh: { ...mesh, components: [...mesh.components, { pid: 102, startTime: 5002, name: 'forwarder', node: 'node-2' }] },
      id: 'spiffe://nsm.local/node/node-2/forwarder',
    },
    { name: 'component pid recycled (other start time)', att: att(HOST, proc({ pid: 100, startTime: 5999, netns: HOST })), refused: /pid 100: a recycled pid/ },
    { name: 'nsm nsc in a pod', att: att(POD_A, proc({})), id: 'spiffe://nsm.local/ns/nsc-pod/nsc' },
    { name: 'nsm nse in a pod (installed as nsm)', att: att(POD_B, proc({ netns: POD_B, cmdline: ['/usr/local/bin/nsm', 'nse'] })), id: 'spiffe://nsm.local/ns/nse-pod/nse' },
    { name: 'anything else in a pod is a workload', att: att(POD_A, proc({ cmdline: ['/bin/busybox', 'sh'] })), id: 'spiffe://nsm.local/ns/nsc-pod/workload' },
    { name: 'host netns, not started by the mesh', att: att(HOST, proc({ netns: HOST })), refused: /pid 200: not started by the mesh, and its netns .* is no pod/ },
    { name: 'netns that is no pod', att: att(OTHER, proc({ netns: OTHER })), refused: /no pod of the mesh/ },
    { name: 'socket made in a pod, process moved to host', att: att(POD_A, proc({ netns: HOST })), refused: /created its socket in pod nsc-pod .* but is in netns/ },
    { name: 'non-root uid in a pod', att: att(POD_A, proc({ uid: 1000 })), refused: /uid 1000 in pod nsc-pod is not allowed/ },
    { name: 'non-root uid allowed by the mesh', att: att(POD_A, proc({ uid: 1000 })), mesh: { ...mesh, podUids: [0, 1000] }, id: 'spiffe://nsm.local/ns/nsc-pod/nsc' },
    {
      name: 'socket shared by two processes of one pod, same ID',
      att: att(POD_A, proc({}), proc({ pid: 201, startTime: 9001 })),
      id: 'spiffe://nsm.local/ns/nsc-pod/nsc',
    },
    {
      name: 'socket shared across identities',
      att: att(POD_A, proc({}), proc({ pid: 201, cmdline: ['sh'] })),
      refused: /shared by pids 200, 201 with different identities/,
    },
    { name: 'one holder refused refuses all', att: att(POD_A, proc({}), proc({ pid: 202, uid: 7 })), refused: /pid 202: uid 7/ },
    { name: 'no holder', att: att(POD_A), refused: /no process holds socket 777/ },
    { name: 'pod name not a SPIFFE segment', att: att(POD_A, proc({})), mesh: { ...mesh, pods: new Map([[POD_A, '..']]) }, refused: /"\.\." cannot be a SPIFFE ID path segment/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = identityFor(c.att, c.mesh ?? mesh);
      if (c.id) assert.deepEqual(d, { ok: true, pid: c.att.holders[0].pid, spiffeId: c.id });
      else {
        assert.equal(d.ok, false);
        assert.match(d.ok ? '' : d.reason, c.refused!);
      }
    });
  }

  it('workloadName reads only `[node] nsm|main.js nsc|nse`', () => {
    const table: Array<[string[], string]> = [
      [['node', '/x/dist/src/cli/main.js', 'nsc'], 'nsc'],
      [['/usr/bin/node20', '/x/main.js', 'nse', '--flag'], 'nse'],
      [['nsm', 'nse'], 'nse'],
      [['nsm', 'nsmgr'], 'workload'],
      [['node', '/x/evil.js', 'nsc'], 'workload'],
      [['nsc'], 'workload'],
      [[], 'workload'],
    ];
    for (const [argv, want] of table) assert.equal(workloadName(argv), want, argv.join(' '));
  });

  it('isPathSegment', () => {
    for (const s of ['a', 'nsc-pod', 'A.b_c-1']) assert.equal(isPathSegment(s), true, s);
    for (const s of ['', '.', '..', 'a/b', 'a b', 'é']) assert.equal(isPathSegment(s), false, s);
  });
});
