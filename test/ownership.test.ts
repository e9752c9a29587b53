/**
 * Ownership of kernel objects on real processes and real network namespaces (issue 12, point 2): in the
 * seed's pods, a second client in the NSC's pod asks for the interface name the first connection has
 * (`nsm-1`), and a third one for the name of an interface the pod made itself. Both are refused (the
 * forwarder answers ALREADY_EXISTS naming the interface, the netns and, for the first, the owner
 * connection); the first connection's interface stays the same interface and keeps carrying pings both
 * ways, its client sees no heal, the pod's own interface is left alone, and the NSE's pod gets nothing
 * from the refused attempts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { healEvents, link, links, nsm, ping, requireRoot, seed, seedNscEnv, sh, startMesh } from './harness.js';

describe('ownership of kernel objects (real processes, real netns)', () => {
  it('a second connection naming nsm-1 in the same pod, or a pod\'s own interface: refused, nothing touched', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    // A /30: the refused connections get addresses from the NSE, so what refuses them is the forwarder.
    const pods = await seed(t, mesh, { nseEnv: { NSM_CIDR_PREFIX: '172.16.1.100/30' } });
    const before = await link(pods.nscNs, 'nsm-1');
    const owner = /^nsm-ts:(.+):nsc$/.exec(before?.ifalias ?? '')?.[1];
    assert.ok(owner, `nsm-1 carries an nsm-ts alias: ${before?.ifalias}`);
    const nseLinksBefore = (await links(pods.nseNs)).map((l) => l.ifname).sort();
    await sh('ip', ['-n', pods.nscNs, 'link', 'add', 'eth9', 'type', 'bridge']);
    const eth9 = await link(pods.nscNs, 'eth9');

    // One refused client at a time: each attempt takes the /30's second pair and gives it back.
    const second = nsm(t, mesh.dir, 'nsc-2', ['nsc'], seedNscEnv(mesh, { NSM_NAME: 'nsc-kernel-2' }), pods.nscNs);
    const refused = await second.waitLog(/^.*"msg":"request failed; retrying".*$/m, 20_000);
    assert.match(refused, new RegExp(`nsc interface nsm-1 already exists in netns [^ ]+: it belongs to connection ${owner}`));
    // A second refusal, to be sure retries change nothing either.
    assert.match(await second.waitLog(/^.*"attempt":2,.*"msg":"request failed; retrying".*$/m, 20_000), /nsc interface nsm-1 already exists/);
    await second.kill();
    const third = nsm(t, mesh.dir, 'nsc-3', ['nsc'], seedNscEnv(mesh, { NSM_NAME: 'nsc-kernel-3', NSM_NETWORK_SERVICES: 'kernel://dataplane-interrupt/eth9' }), pods.nscNs);
    const foreign = await third.waitLog(/^.*"msg":"request failed; retrying".*$/m, 20_000);
    assert.match(foreign, /nsc interface eth9 already exists in netns [^ ]+ and is not owned by nsm-ts/);
    await third.kill();

    const after = await link(pods.nscNs, 'nsm-1');
    assert.deepEqual([after?.ifindex, after?.address, after?.ifalias], [before?.ifindex, before?.address, before?.ifalias], 'nsm-1 is the same interface');
    assert.deepEqual(await link(pods.nscNs, 'eth9'), eth9, 'the pod\'s own interface is untouched');
    assert.ok(await ping(pods.nscNs, '172.16.1.100', 3), 'NSC → NSE still answers');
    assert.ok(await ping(pods.nseNs, '172.16.1.101', 3), 'NSE → NSC still answers');
    assert.deepEqual(healEvents(pods.nsc), [], 'the first client saw nothing to heal');
    assert.deepEqual((await links(pods.nseNs)).map((l) => l.ifname).sort(), nseLinksBefore, 'no interface left in the NSE pod by the refused attempts');
    assert.deepEqual((await links(pods.nscNs)).map((l) => l.ifname).sort(), ['eth9', 'lo', 'nsm-1']);
  });
});
