/**
 * The seed scenario with identities from real SPIRE (v1.13.3: join-token node attestation, unix workload
 * attestation), issue 13: registry, nsmgr, forwarder, NSE and NSC take their X.509-SVIDs from the SPIRE
 * agent's Workload API (SPIFFE_ENDPOINT_SOCKET), speak mTLS on every hop and sign their path segments
 * with their SVID keys (ES256); then the seed, step for step: ping both ways, the seed's pinger, `ip link
 * set nsm-1 down`, the pinger sees the loss, the mesh heals by itself, ping both ways.
 *
 * `nsm apply` of the seed's service also gets its SVID from the agent. Every process here runs as root, so one entry (`unix:uid:0`) names them all: the test is about SVIDs
 * from SPIRE on every hop, not about telling workloads apart (the embedded issuer's tests do that).
 * Skips (saying why) only where `go` is missing; a failed SPIRE install fails the test.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { initialConnections } from '../src/local/grpc.js';
import { silentLogger } from '../src/core/log.js';
import { mtls } from '../src/security/tls.js';
import { verifyToken } from '../src/security/token.js';
import { workloadApiSource } from '../src/security/workload-client.js';
import { defer, healEvents, ping, requireRoot, seed, seedPinger, sh, startMesh, waitFor } from './harness.js';
import { SpireUnavailableError, startSpire, type Spire } from './spire.js';

const TD = 'example.org';
const ID = `spiffe://${TD}/nsm-ts/root-workload`;

describe('seed with SVIDs from real SPIRE (real processes, real netns)', { concurrency: false }, () => {
  let spire: Spire | undefined;
  let skip: string | undefined;

  before(async () => {
    if (process.getuid?.() !== 0) return void (skip = 'needs root');
    try {
      spire = await startSpire({ dir: mkdtempSync(join(tmpdir(), 'nsmt-spire-')), trustDomain: TD, svidTtlSeconds: 300 });
      await spire.createEntry(ID, ['unix:uid:0']);
    } catch (err) {
      if (!(err instanceof SpireUnavailableError)) throw err;
      skip = err.message;
      console.log(`# SKIP seed with SPIRE: ${skip}`);
    }
  });
  after(async () => {
    await spire?.stop();
  });

  it('mTLS and ES256 path tokens on every hop; pings both ways; a data-plane interruption heals by itself', { timeout: 120_000 }, async (t) => {
    if (!requireRoot(t)) return;
    if (!spire) return t.skip(skip);
    const secure = { NSM_INSECURE: 'false', SPIFFE_ENDPOINT_SOCKET: spire.endpointSocket };
    const mesh = await startMesh(t, { registryEnv: secure, nsmgrEnv: secure, forwarderEnv: secure });
    for (const c of ['registry', 'nsmgr', 'forwarder'] as const) assert.match(mesh[c].log(), new RegExp(`"msg":"identity: ${ID} until`), `${c} has its SVID from SPIRE`);
    const pods = await seed(t, mesh, { nscEnv: secure, nseEnv: secure, applyEnv: secure });

    for (const p of [pods.nse, pods.nsc]) assert.match(p.log(), new RegExp(`"msg":"identity: ${ID} until`), 'the NSE and the NSC have their SVIDs from SPIRE');

    // nsmgr's view of the connection over mTLS (this process's SVID from the same agent): every path
    // segment carries an ES256 token signed with an SVID key of SPIRE, sub = the hop, aud = the next hop.
    const source = workloadApiSource({ endpoint: spire.endpointSocket, log: silentLogger });
    defer(t, () => source.close());
    const material = await source.ready(AbortSignal.timeout(10_000));
    const [held] = await initialConnections(mesh.sock.nsmgr.slice('unix://'.length), mtls(source, { log: silentLogger }), 5000);
    const segs = held?.path?.pathSegments ?? [];
    assert.deepEqual(segs.map((s) => s.name), ['nsc-kernel-1', 'nsmgr-test', mesh.env('forwarder').NSM_NAME, 'nse-kernel-1'], 'the seed path: nsc → nsmgr → forwarder → nse');
    for (const [i, seg] of segs.entries()) {
      const tok = verifyToken(seg.token, material.svid.leaf);
      assert.equal(tok.payload.sub, ID, `segment ${i}: sub`);
      if (i < segs.length - 1) assert.deepEqual(tok.payload.aud, [ID], `segment ${i}: aud is the next hop`);
    }
    assert.ok(await ping(pods.nscNs, '172.16.1.100', 4), 'NSC → NSE: ping -c 4 172.16.1.100');
    assert.ok(await ping(pods.nseNs, '172.16.1.101', 4), 'NSE → NSC: ping -c 4 172.16.1.101');

    const pingerPath = join(mesh.dir, 'pinger-done');
    const pinger = seedPinger(t, mesh.dir, pods.nscNs, pingerPath);
    let pingerOut = '';
    pinger.stdout!.on('data', (d: Buffer) => (pingerOut += d.toString()));
    defer(t, () => pinger.kill('SIGKILL'));
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(existsSync(pingerPath), false, `the pinger saw no loss before the interruption: ${pingerOut}`);
    await sh('ip', ['netns', 'exec', pods.nscNs, 'ip', 'link', 'set', 'nsm-1', 'down']);
    await waitFor('the pinger to see the interruption', () => existsSync(pingerPath), 10_000, 100);
    await waitFor('pings NSC → NSE after the heal', () => ping(pods.nscNs, '172.16.1.100', 1), 10_000);
    assert.ok(await ping(pods.nscNs, '172.16.1.100', 4), 'NSC → NSE after the heal');
    assert.ok(await ping(pods.nseNs, '172.16.1.101', 4), 'NSE → NSC after the heal');
    const healed = healEvents(pods.nsc).filter((e) => e.type === 'healed');
    assert.equal(healed.length, 1, 'exactly one heal');
    assert.equal(healed[0].action, 'repair');
  });
});
