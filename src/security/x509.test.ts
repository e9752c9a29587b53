import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { FakeClock } from '../core/clock.js';
import { buildCertificate, createCa, type CertificateTemplate } from './ca.js';
import {
  KEY_USAGE, MAX_CHAIN_CERTS, OID, bundleDerToPem, bundlesFromWire, certInfo, parseCertificates, parseX509SvidDer,
  parseX509SvidPem, spiffeIdOf, splitDer, splitPem, svidToDer, toPem, verifySvidChain, x509SvidFrom,
} from './x509.js';

const T0 = Date.parse('2026-12-02T12:00:00Z');
const HOUR = 3600_000;
const ec = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

/** A root (self-signed CA) for `td` with its key. */
function root(td: string, from = T0 - HOUR, to = T0 + 24 * HOUR) {
  const k = ec();
  const cert = buildCertificate({ signingKey: k.privateKey, publicKey: k.publicKey, subject: [['O', 'test'], ['CN', `root ${td}`]], uris: [`spiffe://${td}`], isCa: true, keyUsage: [KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign], notBefore: new Date(from), notAfter: new Date(to) });
  return { cert, key: k.privateKey };
}

/** A certificate issued by `issuer`, shaped like an SVID leaf unless `over` says otherwise. */
function leaf(issuer: { cert?: X509Certificate; key: KeyObject }, over: Partial<CertificateTemplate> = {}) {
  const k = ec();
  const cert = buildCertificate({
    signingKey: issuer.key, issuer: issuer.cert, publicKey: k.publicKey, subject: [['O', 'test']], uris: ['spiffe://example.org/ns/a/sa/b'],
    isCa: false, keyUsage: [KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment, KEY_USAGE.keyAgreement], extKeyUsage: [OID.serverAuth, OID.clientAuth],
    notBefore: new Date(T0 - 60_000), notAfter: new Date(T0 + HOUR), ...over,
  });
  return { cert, key: k.privateKey };
}

function intermediate(issuer: { cert: X509Certificate; key: KeyObject }, over: Partial<CertificateTemplate> = {}) {
  const k = ec();
  const cert = buildCertificate({ signingKey: issuer.key, issuer: issuer.cert, publicKey: k.publicKey, subject: [['O', 'test'], ['CN', 'intermediate']], uris: ['spiffe://example.org'], isCa: true, keyUsage: [KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign], notBefore: new Date(T0 - HOUR), notAfter: new Date(T0 + 12 * HOUR), ...over });
  return { cert, key: k.privateKey };
}

test('x509: an SVID round-trips through the Workload API DER form and through PEM', () => {
  const ca = createCa({ trustDomain: 'example.org', clock: new FakeClock(Date.now()) });
  const svid = ca.issue({ spiffeId: 'spiffe://example.org/ns/default/sa/nsc', ttlMs: HOUR });
  const wire = svidToDer(svid);
  const fromDer = parseX509SvidDer(wire.certs, wire.key);
  assert.equal(fromDer.spiffeId, 'spiffe://example.org/ns/default/sa/nsc');
  assert.equal(fromDer.certChainPem, svid.certChainPem);
  assert.ok(fromDer.leaf.checkPrivateKey(fromDer.privateKey));
  assert.equal(fromDer.notAfter.getTime(), Date.parse(svid.leaf.validTo));
  const fromPem = parseX509SvidPem(svid.certChainPem, svid.keyPem);
  assert.equal(fromPem.spiffeId, svid.spiffeId);
  assert.equal(fromPem.keyPem, svid.keyPem);
  assert.equal(spiffeIdOf(ca.root), 'spiffe://example.org');
});

test('x509: concatenated DER and PEM split into certificates; garbage and too many are refused', () => {
  const r = root('example.org');
  const i = intermediate(r);
  const l = leaf(i);
  const concat = Buffer.concat([l.cert.raw, i.cert.raw, r.cert.raw]);
  assert.deepEqual(splitDer(concat).map((b) => b.length), [l.cert.raw.length, i.cert.raw.length, r.cert.raw.length]);
  const pem = [l.cert, i.cert, r.cert].map((c) => toPem(c.raw)).join('') + '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n';
  assert.equal(splitPem(pem).length, 3);
  assert.equal(parseCertificates(pem)[1]!.subject, i.cert.subject);
  assert.equal(toPem(r.cert.raw), r.cert.toString());
  assert.throws(() => splitDer(Buffer.concat(Array(MAX_CHAIN_CERTS + 1).fill(r.cert.raw))), { name: 'InvalidArgumentError' });
  const refuse: Array<[string, () => unknown, string]> = [
    ['empty DER', () => parseCertificates(Buffer.alloc(0), 'x509_svid'), 'x509_svid'],
    ['empty PEM', () => parseCertificates('', 'bundle'), 'bundle'],
    ['truncated DER', () => parseCertificates(concat.subarray(0, concat.length - 5), 'x509_svid'), 'x509_svid'],
    ['not a SEQUENCE', () => parseCertificates(Buffer.from([0x04, 0x01, 0x00]), 'x509_svid'), 'x509_svid'],
    ['a SEQUENCE that is no certificate', () => parseCertificates(Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), 'x509_svid'), 'x509_svid[0]'],
  ];
  for (const [what, f, field] of refuse) assert.throws(f, (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === field, what);
});

test('x509: parsing refuses what is no X.509-SVID, naming the field', () => {
  const r = root('example.org');
  const good = leaf(r);
  const cases: Array<[string, X509Certificate[], KeyObject, string]> = [
    ['no URI SAN', [leaf(r, { uris: [] }).cert], good.key, 'x509_svid[0].uri_san'],
    ['two URI SANs', [leaf(r, { uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] }).cert], good.key, 'x509_svid[0].uri_san'],
    ['URI SAN not a SPIFFE ID', [leaf(r, { uris: ['https://example.org/a'] }).cert], good.key, 'x509_svid[0].uri_san'],
    ['leaf is a CA', [leaf(r, { isCa: true }).cert], good.key, 'x509_svid[0]'],
    ['leaf without digitalSignature', [leaf(r, { keyUsage: [KEY_USAGE.keyEncipherment] }).cert], good.key, 'x509_svid[0]'],
    ['leaf with keyCertSign', [leaf(r, { keyUsage: [KEY_USAGE.digitalSignature, KEY_USAGE.keyCertSign] }).cert], good.key, 'x509_svid[0]'],
    ['leaf with cRLSign', [leaf(r, { keyUsage: [KEY_USAGE.digitalSignature, KEY_USAGE.cRLSign] }).cert], good.key, 'x509_svid[0]'],
    ['intermediate not a CA', [good.cert, leaf(r).cert], good.key, 'x509_svid[1]'],
    ['key of another certificate', [good.cert], ec().privateKey, 'x509_svid_key'],
    ['a public key', [good.cert], good.cert.publicKey, 'x509_svid_key'],
  ];
  for (const [what, chain, key, field] of cases) {
    assert.throws(() => x509SvidFrom(chain, key), (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === field, what);
  }
  const withKey = leaf(r);
  const svid = x509SvidFrom([withKey.cert], withKey.key);
  assert.equal(svid.spiffeId, 'spiffe://example.org/ns/a/sa/b');
  assert.throws(() => parseX509SvidDer(withKey.cert.raw, Buffer.from('not a key')), { name: 'InvalidArgumentError', field: 'x509_svid_key' } as object);
  assert.throws(() => parseX509SvidPem(withKey.cert.toString(), 'not a key'), { name: 'InvalidArgumentError', field: 'x509_svid_key' } as object);
});

test('x509: certInfo reads what Node reads too (CA flag, validity, SAN)', () => {
  const r = root('example.org');
  const l = leaf(r);
  for (const c of [r.cert, l.cert]) {
    const info = certInfo(c);
    assert.equal(info.isCa, c.ca);
    assert.equal(info.notBefore.getTime(), Date.parse(c.validFrom));
    assert.equal(info.notAfter.getTime(), Date.parse(c.validTo));
    assert.deepEqual(info.uris.map((u) => `URI:${u}`).join(', '), c.subjectAltName);
  }
});

test('x509: verifySvidChain accepts chains to a root of the leaf\'s trust domain', () => {
  const r = root('example.org');
  const other = root('other.org');
  const bundles = new Map([['example.org', r.cert.toString()], ['other.org', other.cert.toString()]]);
  assert.equal(verifySvidChain([leaf(r).cert], bundles, T0), 'spiffe://example.org/ns/a/sa/b');
  const i1 = intermediate(r);
  const i2 = intermediate(i1, { subject: [['O', 'test'], ['CN', 'intermediate 2']] });
  assert.equal(verifySvidChain([leaf(i2).cert, i1.cert, i2.cert], bundles, new Date(T0)), 'spiffe://example.org/ns/a/sa/b', 'intermediates in any order');
  assert.equal(verifySvidChain([leaf(r, { keyUsage: [KEY_USAGE.keyAgreement] }).cert], bundles, T0), 'spiffe://example.org/ns/a/sa/b', 'a peer leaf without digitalSignature passes, as with go-spiffe\'s Verify');
  const two = new Map([['example.org', r.cert.toString() + other.cert.toString()]]);
  assert.equal(verifySvidChain([leaf(other, { uris: ['spiffe://example.org/x'] }).cert], two, T0), 'spiffe://example.org/x', 'any root of the bundle');
});

test('x509: verifySvidChain names why a chain does not verify', () => {
  const r = root('example.org');
  const other = root('other.org');
  const impostor = root('example.org');
  const bundles = new Map([['example.org', r.cert.toString()], ['other.org', other.cert.toString()]]);
  const i = intermediate(r);
  const selfKey = ec();
  const selfSigned = buildCertificate({ signingKey: selfKey.privateKey, publicKey: selfKey.publicKey, subject: [['O', 'self']], uris: ['spiffe://example.org/self'], isCa: false, keyUsage: [KEY_USAGE.digitalSignature], notBefore: new Date(T0 - HOUR), notAfter: new Date(T0 + HOUR) });
  const forged = leaf({ cert: r.cert, key: impostor.key }).cert;
  const cases: Array<[string, X509Certificate[], Map<string, string>, number, string]> = [
    ['empty chain', [], bundles, T0, 'malformed'],
    ['leaf without SPIFFE ID', [leaf(r, { uris: [] }).cert], bundles, T0, 'malformed'],
    ['leaf is a CA', [leaf(r, { isCa: true }).cert], bundles, T0, 'malformed'],
    ['no bundle for the leaf\'s trust domain', [leaf(r, { uris: ['spiffe://third.org/x'] }).cert], bundles, T0, 'trust-domain'],
    ['leaf of example.org signed by the other.org root', [leaf(other).cert], bundles, T0, 'unknown-authority'],
    ['leaf not yet valid', [leaf(r, { notBefore: new Date(T0 + 60_000) }).cert], bundles, T0, 'not-yet-valid'],
    ['leaf expired', [leaf(r).cert], bundles, T0 + 2 * HOUR, 'expired'],
    ['an intermediate of the same name but another key', [leaf(i).cert, intermediate(r).cert], bundles, T0, 'unknown-authority'],
    ['a bundle that holds another root of the domain only', [leaf(r).cert], new Map([['example.org', impostor.cert.toString()]]), T0, 'unknown-authority'],
    ['signed by another key under the root\'s name', [forged], bundles, T0, 'bad-signature'],
    ['self-signed leaf not in the bundle', [selfSigned], bundles, T0, 'self-signed'],
    ['intermediate missing', [leaf(i).cert], bundles, T0, 'unknown-authority'],
    ['intermediate that is no CA', [leaf(leaf(r)).cert, leaf(r).cert], bundles, T0, 'unknown-authority'],
  ];
  for (const [what, chain, b, now, reason] of cases) {
    assert.throws(() => verifySvidChain(chain, b, now), (err: Error & { reason?: string }) => err.name === 'SvidVerificationError' && err.reason === reason && err instanceof Error, what);
  }
});

test('x509: expiry is checked on every certificate of the path, the root included', () => {
  const r = root('example.org', T0 - HOUR, T0 + 2 * HOUR);
  const i = intermediate(r, { notAfter: new Date(T0 + HOUR / 2) });
  const l = leaf(i, { notAfter: new Date(T0 + 3 * HOUR) });
  const bundles = new Map([['example.org', r.cert.toString()]]);
  assert.equal(verifySvidChain([l.cert, i.cert], bundles, T0), 'spiffe://example.org/ns/a/sa/b');
  assert.throws(() => verifySvidChain([l.cert, i.cert], bundles, T0 + HOUR), { name: 'SvidVerificationError', reason: 'expired' } as object);
  const l2 = leaf(r, { notAfter: new Date(T0 + 3 * HOUR) });
  assert.throws(() => verifySvidChain([l2.cert], bundles, T0 + 2.5 * HOUR), (err: Error & { reason?: string }) => err.reason === 'expired' && err.message.includes('root'));
});

test('x509: bundles from the Workload API form, keyed by trust domain name', () => {
  const r = root('example.org');
  const f = root('fed.org');
  const b = bundlesFromWire('example.org', r.cert.raw, { 'spiffe://fed.org': f.cert.raw, 'example.org': f.cert.raw }, 10);
  assert.deepEqual([...b.keys()], ['example.org', 'fed.org']);
  assert.equal(b.get('example.org'), r.cert.toString(), 'the SVID\'s own bundle wins over a federated entry for its own domain');
  assert.equal(bundleDerToPem(Buffer.concat([r.cert.raw, f.cert.raw])), r.cert.toString() + f.cert.toString());
  assert.throws(() => bundlesFromWire('example.org', r.cert.raw, { 'spiffe://BAD': f.cert.raw }, 10), { name: 'InvalidArgumentError', field: 'federated_bundles' } as object);
  assert.throws(() => bundlesFromWire('example.org', r.cert.raw, { a: f.cert.raw, b: f.cert.raw }, 1), { name: 'InvalidArgumentError', field: 'federated_bundles' } as object);
  assert.throws(() => bundlesFromWire('example.org', Buffer.alloc(0), {}, 1), { name: 'InvalidArgumentError', field: 'bundle' } as object);
});
