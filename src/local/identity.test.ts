import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeClock } from '../core/clock.js';
import { serve } from '../core/transport.js';
import { INSECURE, mtls } from '../security/tls.js';
import { probeHealth } from './grpc.js';
import { CaSource, commandSecurity, loadMeshCa, loadOrCreateCa, localMeshSecurity, nodeSpiffeId, removeCa } from './identity.js';
import { runPaths } from './paths.js';
import { recordFor } from './proc.js';
import { emptyState, writeState, type MeshState } from './state.js';

function tempPaths() {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-identity-'));
  return { paths: runPaths(dir), done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('node SPIFFE IDs: spiffe://nsm.local/node/<node>/<component>; a name that is no path segment is refused naming the field', () => {
  assert.equal(nodeSpiffeId('host-1', 'cli'), 'spiffe://nsm.local/node/host-1/cli');
  for (const [node, component, field] of [['a/b', 'cli', 'node'], ['..', 'cli', 'node'], ['h', '', 'component'], ['h', 'c d', 'component']]) {
    assert.throws(() => nodeSpiffeId(node, component), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === field);
  }
});

test('the mesh CA: created once with private files, loaded on later starts, refused when others can read the key, removed by removeCa', () => {
  const { paths, done } = tempPaths();
  try {
    assert.equal(loadMeshCa(paths), undefined);
    const first = loadOrCreateCa(paths);
    assert.equal(first.created, true);
    assert.equal(first.ca.trustDomain, 'nsm.local');
    assert.equal(statSync(paths.ca.dir).mode & 0o777, 0o700);
    assert.equal(statSync(paths.ca.key).mode & 0o777, 0o600);
    assert.equal(statSync(paths.ca.cert).mode & 0o777, 0o644);
    const again = loadOrCreateCa(paths);
    assert.equal(again.created, false);
    assert.equal(new X509Certificate(again.ca.rootPem).fingerprint256, new X509Certificate(first.ca.rootPem).fingerprint256, 'same root across starts');

    chmodSync(paths.ca.key, 0o644);
    assert.throws(() => loadMeshCa(paths), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === paths.ca.key && /chmod 600/.test(e.message));
    chmodSync(paths.ca.key, 0o600);

    unlinkSync(paths.ca.cert);
    assert.throws(() => loadMeshCa(paths), /incomplete/);
    assert.equal(removeCa(paths), true);
    assert.equal(existsSync(paths.ca.dir), false);
    assert.equal(removeCa(paths), false);
  } finally {
    done();
  }
});

test('CaSource: one SVID for its ID until half its lifetime, then a new one, announced to listeners', async () => {
  const { paths, done } = tempPaths();
  try {
    const clock = new FakeClock(Date.now());
    const { ca } = loadOrCreateCa(paths, clock);
    const src = new CaSource(ca, nodeSpiffeId('h', 'cli'), { ttlMs: 120_000, clock });
    const a = await src.ready();
    assert.equal(a.svid.spiffeId, 'spiffe://nsm.local/node/h/cli');
    assert.equal(a.bundles.get('nsm.local'), ca.rootPem);
    const updates: string[] = [];
    src.onUpdate((m) => updates.push(m.svid.leaf.serialNumber));
    await clock.advance(59_000);
    assert.equal(src.current(), a, 'same material before half its lifetime');
    await clock.advance(2_000);
    const b = src.current();
    assert.notEqual(b.svid.leaf.serialNumber, a.svid.leaf.serialNumber);
    assert.deepEqual(updates, [b.svid.leaf.serialNumber]);
    assert.throws(() => new CaSource(ca, 'spiffe://nsm.local/x', { ttlMs: 1000 }), { name: 'InvalidArgumentError' });
    src.close();
    assert.throws(() => src.current(), { name: 'CancelledError' });
  } finally {
    done();
  }
});

test('command security: NSM_INSECURE, then SPIFFE_ENDPOINT_SOCKET, then the mesh of the run dir; nothing → a message saying what to set', async () => {
  const { paths, done } = tempPaths();
  try {
    const insecure = await commandSecurity({ paths, node: 'h', env: { NSM_INSECURE: 'true', SPIFFE_ENDPOINT_SOCKET: 'unix:///nowhere.sock' } });
    assert.equal(insecure.security, INSECURE);
    await assert.rejects(commandSecurity({ paths, node: 'h', env: { NSM_INSECURE: 'maybe' } }), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === 'NSM_INSECURE');
    await assert.rejects(commandSecurity({ paths, node: 'h', env: {} }), (e: Error) => e.name === 'UnavailableError' && /no mesh is up in .*SPIFFE_ENDPOINT_SOCKET is not set and NSM_INSECURE is not true/.test(e.message));
    await assert.rejects(
      commandSecurity({ paths, node: 'h', env: { SPIFFE_ENDPOINT_SOCKET: `unix://${join(paths.dir, 'none.sock')}` }, waitMs: 300 }),
      (e: Error) => e.name === 'UnavailableError' && /no X\.509-SVID from SPIFFE_ENDPOINT_SOCKET=unix:\/\/.*none\.sock within 300 ms/.test(e.message),
    );
    await assert.rejects(commandSecurity({ paths, node: 'h', env: { SPIFFE_ENDPOINT_SOCKET: 'tcp://1.2.3.4:1' } }), /SPIFFE_ENDPOINT_SOCKET/);

    // a mesh "up" (this process as its supervisor): secure → a CLI SVID from the CA; insecure → plaintext
    const up = (security: MeshState['security']) => writeState(paths, { ...emptyState(paths.dir, 'h'), security, supervisor: recordFor(process.pid) });
    up('insecure');
    assert.equal((await commandSecurity({ paths, node: 'h', env: {} })).security, INSECURE);
    up('mtls');
    await assert.rejects(commandSecurity({ paths, node: 'h', env: {} }), /its CA .* is gone/);
    loadOrCreateCa(paths);
    const sec = await commandSecurity({ paths, node: 'h', env: {} });
    assert.equal(sec.security.kind, 'mtls');
    assert.match(sec.describe, /^spiffe:\/\/nsm\.local\/node\/h\/cli \(issued from /);
    sec.close();
  } finally {
    done();
  }
});

test('probeHealth over mTLS reports the server SPIFFE ID and SVID from the handshake; a plaintext probe of an mTLS server is UNREACHABLE with the reason', async () => {
  const { paths, done } = tempPaths();
  const { ca } = loadOrCreateCa(paths);
  const serverSource = new CaSource(ca, nodeSpiffeId('h', 'registry'), { ttlMs: 600_000 });
  const sock = join(paths.dir, 'r.sock');
  const server = await serve([`unix://${sock}`], [], mtls(serverSource));
  const cli = localMeshSecurity(paths, { ...emptyState(paths.dir, 'h'), security: 'mtls' }, 'h');
  try {
    const p = await probeHealth(sock, cli.security, 5000);
    assert.equal(p.health, 'SERVING');
    assert.equal(p.identity?.spiffeId, 'spiffe://nsm.local/node/h/registry');
    assert.equal(p.identity?.certificate.serialNumber, serverSource.current().svid.leaf.serialNumber);
    const plain = await probeHealth(sock, INSECURE, 1000);
    assert.equal(plain.health, 'UNREACHABLE');
    assert.equal(plain.identity, undefined);
    assert.ok(plain.error, 'names why');
  } finally {
    cli.close();
    serverSource.close();
    await server.stop({ force: true });
    done();
  }
});
