import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { FakeClock } from '../core/clock.js';
import { BACKDATE_MS, MAX_SVID_TTL_MS, MIN_SVID_TTL_MS, createCa, loadCa } from './ca.js';
import { certInfo, verifySvidChain } from './x509.js';

const HOUR = 3600_000;

function tempDir(t: import('node:test').TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-ca-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('ca: an issued SVID is what SPIRE would issue, and node and openssl both verify it', (t) => {
  const now = Math.floor(Date.now() / 1000) * 1000;
  const ca = createCa({ trustDomain: 'example.org', clock: new FakeClock(now) });
  const svid = ca.issue({ spiffeId: 'spiffe://example.org/ns/default/sa/nsc', ttlMs: HOUR });
  assert.equal(svid.spiffeId, 'spiffe://example.org/ns/default/sa/nsc');
  assert.equal(svid.leaf.ca, false);
  assert.equal(svid.leaf.issuer, ca.root.subject);
  assert.ok(svid.leaf.verify(ca.root.publicKey));
  assert.ok(svid.leaf.checkIssued(ca.root));
  assert.equal(certInfo(svid.leaf).notBefore.getTime(), now - BACKDATE_MS);
  assert.equal(svid.notAfter.getTime(), now + HOUR);
  assert.equal(verifySvidChain([svid.leaf], ca.bundles, now), svid.spiffeId);
  assert.equal(ca.root.ca, true);
  assert.equal(ca.root.subjectAltName, 'URI:spiffe://example.org');
  assert.ok(ca.root.verify(ca.root.publicKey));

  const dir = tempDir(t);
  writeFileSync(join(dir, 'root.pem'), ca.rootPem);
  writeFileSync(join(dir, 'leaf.pem'), svid.certChainPem);
  for (const purpose of ['sslserver', 'sslclient']) {
    const out = execFileSync('openssl', ['verify', '-x509_strict', '-purpose', purpose, '-CAfile', join(dir, 'root.pem'), join(dir, 'leaf.pem')], { encoding: 'utf8' });
    assert.match(out, /leaf\.pem: OK/);
  }
  assert.match(execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(dir, 'root.pem'), join(dir, 'root.pem')], { encoding: 'utf8' }), /root\.pem: OK/);
  const text = execFileSync('openssl', ['x509', '-in', join(dir, 'leaf.pem'), '-noout', '-text'], { encoding: 'utf8' });
  for (const want of [
    /Basic Constraints: critical\s+CA:FALSE/,
    /Key Usage: critical\s+Digital Signature, Key Encipherment, Key Agreement/,
    /Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/,
    /Subject Key Identifier:/,
    /Authority Key Identifier:/,
    /URI:spiffe:\/\/example\.org\/ns\/default\/sa\/nsc/,
    /Signature Algorithm: ecdsa-with-SHA256/,
    /ASN1 OID: prime256v1/,
  ]) assert.match(text, want);
  const rootText = execFileSync('openssl', ['x509', '-in', join(dir, 'root.pem'), '-noout', '-text'], { encoding: 'utf8' });
  assert.match(rootText, /Basic Constraints: critical\s+CA:TRUE/);
  assert.match(rootText, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
  assert.match(rootText, /URI:spiffe:\/\/example\.org\n/);
  const ski = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(rootText)![1];
  assert.match(text, new RegExp(`Authority Key Identifier:\\s+(keyid:)?${ski}`), 'the leaf\'s AKI is the root\'s SKI');
});

test('ca: serials are random positive 127-bit numbers; a given key is certified as is', () => {
  const ca = createCa({ trustDomain: 'example.org' });
  const serials = new Set<string>();
  for (let i = 0; i < 20; i++) serials.add(ca.issue({ spiffeId: 'spiffe://example.org/x' }).leaf.serialNumber);
  assert.equal(serials.size, 20);
  for (const s of serials) assert.ok(BigInt(`0x${s}`) > 0n && BigInt(`0x${s}`) < 2n ** 127n, s);
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const a = ca.issue({ spiffeId: 'spiffe://example.org/x', privateKey: key });
  const b = ca.issue({ spiffeId: 'spiffe://example.org/x', privateKey: key });
  assert.ok(a.leaf.publicKey.equals(b.leaf.publicKey));
  assert.ok(a.leaf.checkPrivateKey(key));
  const pub = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey;
  const cert = ca.issueCertificate({ spiffeId: 'spiffe://example.org/csr', publicKey: pub });
  assert.ok(cert.publicKey.equals(pub));
  assert.equal(verifySvidChain([cert], ca.bundles), 'spiffe://example.org/csr');
});

test('ca: bad requests are refused naming the field; the TTL is bounded and cut at the root\'s end', () => {
  const clock = new FakeClock(Date.parse('2026-12-02T12:00:00Z'));
  const ca = createCa({ trustDomain: 'example.org', clock, rootTtlMs: 2 * HOUR });
  const refuse: Array<[string, () => unknown, string]> = [
    ['ttl below 1 min', () => ca.issue({ spiffeId: 'spiffe://example.org/x', ttlMs: MIN_SVID_TTL_MS - 1 }), 'ttl'],
    ['ttl above 24 h', () => ca.issue({ spiffeId: 'spiffe://example.org/x', ttlMs: MAX_SVID_TTL_MS + 1 }), 'ttl'],
    ['ttl NaN', () => ca.issue({ spiffeId: 'spiffe://example.org/x', ttlMs: Number.NaN }), 'ttl'],
    ['ttl fraction', () => ca.issue({ spiffeId: 'spiffe://example.org/x', ttlMs: 60_000.5 }), 'ttl'],
    ['other trust domain', () => ca.issue({ spiffeId: 'spiffe://other.org/x' }), 'spiffeId'],
    ['no path', () => ca.issue({ spiffeId: 'spiffe://example.org' }), 'spiffeId'],
    ['not a SPIFFE ID', () => ca.issue({ spiffeId: 'example.org/x' }), 'spiffeId'],
    ['a public key as private key', () => ca.issue({ spiffeId: 'spiffe://example.org/x', privateKey: ca.root.publicKey }), 'privateKey'],
    ['bad trust domain', () => createCa({ trustDomain: 'Example.org' }), 'trustDomain'],
    ['root ttl too short', () => createCa({ trustDomain: 'example.org', rootTtlMs: 1000 }), 'rootTtl'],
  ];
  for (const [what, f, field] of refuse) assert.throws(f, (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === field, what);
  assert.equal(ca.issue({ spiffeId: 'spiffe://example.org/x', ttlMs: MIN_SVID_TTL_MS }).notAfter.getTime(), clock.now() + MIN_SVID_TTL_MS);
  const long = ca.issue({ spiffeId: 'spiffe://example.org/x', ttlMs: MAX_SVID_TTL_MS });
  assert.equal(long.notAfter.getTime(), certInfo(ca.root).notAfter.getTime(), 'cut at the root\'s notAfter');
});

test('ca: exportPem and loadCa keep the same CA; a mismatched or non-CA pair is refused', async () => {
  const clock = new FakeClock(Date.now());
  const ca = createCa({ trustDomain: 'example.org', clock });
  const again = loadCa({ ...ca.exportPem(), clock });
  assert.equal(again.trustDomain, 'example.org');
  assert.equal(again.rootPem, ca.rootPem);
  const svid = again.issue({ spiffeId: 'spiffe://example.org/y' });
  assert.equal(verifySvidChain([svid.leaf], ca.bundles, clock.now()), 'spiffe://example.org/y');
  const other = createCa({ trustDomain: 'example.org' });
  assert.throws(() => loadCa({ certPem: ca.rootPem, keyPem: other.exportPem().keyPem }), { name: 'InvalidArgumentError', field: 'keyPem' } as object);
  assert.throws(() => loadCa({ certPem: svid.certChainPem, keyPem: svid.keyPem }), { name: 'InvalidArgumentError', field: 'certPem' } as object);
  assert.throws(() => loadCa({ certPem: 'x', keyPem: 'y' }), { name: 'InvalidArgumentError' });
  await clock.advance(400 * 24 * HOUR);
  assert.throws(() => ca.issue({ spiffeId: 'spiffe://example.org/x' }), /expired/);
});

test('ca: node TLS accepts the issued SVIDs for mutual TLS over a unix socket', async (t) => {
  const ca = createCa({ trustDomain: 'example.org' });
  const server = ca.issue({ spiffeId: 'spiffe://example.org/nsmgr' });
  const client = ca.issue({ spiffeId: 'spiffe://example.org/nsc' });
  const path = join(tempDir(t), 's.sock');
  const srv = tls.createServer({ key: server.keyPem, cert: server.certChainPem, ca: ca.rootPem, requestCert: true, rejectUnauthorized: true }, (s) => {
    s.end(`${s.authorized}:${(s.getPeerCertificate() as { subjectaltname?: string }).subjectaltname}`);
  });
  srv.listen(path);
  await once(srv, 'listening');
  t.after(() => srv.close());
  const sock = tls.connect({ path, key: client.keyPem, cert: client.certChainPem, ca: ca.rootPem, checkServerIdentity: () => undefined });
  let got = '';
  sock.on('data', (d: Buffer) => (got += d.toString()));
  await once(sock, 'end');
  sock.destroy();
  assert.equal(sock.authorized, true);
  assert.equal(got, 'true:URI:spiffe://example.org/nsc');
});
