import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { FakeClock } from '../core/clock.js';
import { makeTestSvid, testX509Source } from '../testing/svid.js';
import { buildCertificate } from './ca.js';
import { decodeToken, es256TokenGenerator, signToken, tokenRequestFor, tokenSubject, verifyToken, type TokenProblem } from './token.js';

const NSC = 'spiffe://test.nsm/nsc';
const NSMGR = 'spiffe://test.nsm/nsmgr';
const svid = makeTestSvid(NSC);
const peer = makeTestSvid(NSMGR);

function parts(token: string): { header: string; payload: Record<string, unknown> } {
  const [h, p] = token.split('.');
  return { header: Buffer.from(h, 'base64url').toString(), payload: JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown> };
}

describe('es256TokenGenerator', () => {
  it('issues exactly upstream tokens: header, sub, aud array, exp; signed with the SVID key', async () => {
    const clock = new FakeClock(svid.notAfter.getTime() - 3600_000);
    const gen = es256TokenGenerator(testX509Source(svid), { clock, maxTokenLifetime: 60_000 });
    const { token, expires } = await gen.generate({ audience: NSMGR, peerNotAfter: peer.notAfter });
    const { header, payload } = parts(token);
    assert.equal(header, '{"alg":"ES256","typ":"JWT"}');
    assert.deepEqual(Object.keys(payload), ['sub', 'aud', 'exp']);
    assert.deepEqual(payload, { sub: NSC, aud: [NSMGR], exp: Math.floor((clock.now() + 60_000) / 1000) });
    assert.equal(expires.getTime(), (payload.exp as number) * 1000);
    assert.equal(Buffer.from(token.split('.')[2], 'base64url').length, 64);
    assert.doesNotThrow(() => verifyToken(token, svid.leaf));
    assert.equal(tokenSubject(token), NSC);
  });

  it('exp is the earliest of now + lifetime, own NotAfter, peer NotAfter (whole seconds, rounded down)', () => {
    const own = svid.notAfter.getTime();
    const rows: { name: string; now: number; lifetime: number; peerNotAfter?: number; exp: number }[] = [
      { name: 'lifetime first', now: own - 3600_000 + 250, lifetime: 600_000, exp: Math.floor((own - 3000_000 + 250) / 1000) },
      { name: 'own NotAfter first', now: own - 60_000, lifetime: 600_000, exp: own / 1000 },
      { name: 'peer NotAfter first', now: own - 3600_000, lifetime: 600_000, peerNotAfter: own - 3599_500, exp: Math.floor((own - 3599_500) / 1000) },
      { name: 'peer NotAfter later than both', now: own - 3600_000, lifetime: 600_000, peerNotAfter: own + 1, exp: (own - 3000_000) / 1000 },
      { name: 'own SVID already expired: issued anyway (the peer refuses it)', now: own + 5000, lifetime: 600_000, exp: own / 1000 },
    ];
    for (const r of rows) {
      const gen = es256TokenGenerator(testX509Source(svid), { clock: new FakeClock(r.now), maxTokenLifetime: r.lifetime });
      const issued = gen.issue({ audience: NSMGR, peerNotAfter: r.peerNotAfter === undefined ? undefined : new Date(r.peerNotAfter) });
      assert.equal(parts(issued.token).payload.exp, r.exp, r.name);
      assert.equal(issued.expires.getTime(), r.exp * 1000, r.name);
    }
  });

  it('takes aud and the peer NotAfter from the peer certificate', () => {
    assert.deepEqual(tokenRequestFor(peer.leaf), { audience: NSMGR, peerNotAfter: peer.notAfter });
    const { token } = es256TokenGenerator(testX509Source(svid)).issue(tokenRequestFor(peer.leaf));
    assert.deepEqual(parts(token).payload.aud, [NSMGR]);
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const plain = buildCertificate({ signingKey: privateKey, publicKey, subject: [['CN', 'no-spiffe-id']], uris: [], isCa: false, keyUsage: [0], notBefore: new Date(), notAfter: new Date(Date.now() + 3600_000) });
    assert.throws(() => tokenRequestFor(plain), { name: 'InvalidArgumentError', field: 'peer certificate.uri_san' }, 'a certificate without a SPIFFE ID');
  });

  it('leaves aud out when there is no peer (as upstream without TLS info)', () => {
    const { token } = es256TokenGenerator(testX509Source(svid)).issue();
    assert.deepEqual(Object.keys(parts(token).payload), ['sub', 'exp']);
  });

  it('reads the SVID at every call: after a rotation tokens carry the new key', async () => {
    const source = testX509Source(svid);
    const gen = es256TokenGenerator(source);
    const before = (await gen.generate()).token;
    const rotated = makeTestSvid(NSC);
    source.rotate(rotated);
    const after = (await gen.generate()).token;
    assert.doesNotThrow(() => verifyToken(before, svid.leaf));
    assert.doesNotThrow(() => verifyToken(after, rotated.leaf));
    assert.throws(() => verifyToken(after, svid.leaf), { name: 'TokenError', problem: 'bad-signature' });
  });

  it('refuses bad options and requests, and rejects before the first SVID', async () => {
    assert.throws(() => es256TokenGenerator(testX509Source(svid), { maxTokenLifetime: 999 }), { name: 'InvalidArgumentError', field: 'maxTokenLifetime' });
    assert.throws(() => es256TokenGenerator(testX509Source(svid), { maxTokenLifetime: 31 * 24 * 3600_000 }), { name: 'InvalidArgumentError', field: 'maxTokenLifetime' });
    const gen = es256TokenGenerator(testX509Source(svid));
    await assert.rejects(gen.generate({ audience: 'nsmgr' }), { name: 'InvalidArgumentError', field: 'audience' });
    await assert.rejects(gen.generate({ peerNotAfter: new Date('nonsense') }), { name: 'InvalidArgumentError', field: 'peerNotAfter' });
    await assert.rejects(es256TokenGenerator(testX509Source()).generate(), { name: 'UnavailableError' });
    const p384 = makeTestSvid(NSC, { curve: 'P-384' });
    await assert.rejects(es256TokenGenerator(testX509Source(p384)).generate(), { name: 'InvalidArgumentError', field: 'svid.privateKey' });
  });
});

describe('verifyToken / decodeToken', () => {
  const exp = Math.floor(Date.now() / 1000) + 600;
  const good = signToken({ sub: NSC, aud: [NSMGR], exp }, svid.privateKey);
  const [h, p, s] = good.split('.');
  const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

  it('verifies with the certificate or its public key, and returns the claims', () => {
    assert.deepEqual(verifyToken(good, svid.leaf).payload, { sub: NSC, aud: [NSMGR], exp });
    assert.deepEqual(verifyToken(good, svid.leaf.publicKey).header, { alg: 'ES256', typ: 'JWT' });
  });

  it('refuses what upstream refuses, with a typed problem', () => {
    const { publicKey: rsa } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rows: { name: string; token: string; key?: KeyObject; problem: TokenProblem }[] = [
      { name: 'signed by another key', token: signToken({ sub: NSC, exp }, peer.privateKey), problem: 'bad-signature' },
      { name: 'payload changed after signing', token: `${h}.${b64({ sub: NSMGR, aud: [NSMGR], exp })}.${s}`, problem: 'bad-signature' },
      { name: 'alg none', token: `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`, problem: 'wrong-algorithm' },
      { name: 'HS256 header', token: `${b64({ alg: 'HS256', typ: 'JWT' })}.${p}.${s}`, problem: 'wrong-algorithm' },
      { name: 'DER signature instead of r||s', token: `${h}.${p}.${Buffer.alloc(70, 1).toString('base64url')}`, problem: 'bad-signature' },
      { name: 'RSA key to verify with', token: good, key: rsa, problem: 'unusable-key' },
      { name: 'empty', token: '', problem: 'malformed' },
      { name: 'two parts', token: `${h}.${p}`, problem: 'malformed' },
      { name: 'four parts', token: `${good}.x`, problem: 'malformed' },
      { name: 'not base64url', token: `${h}.${p}+/.${s}`, problem: 'malformed' },
      { name: 'payload not JSON', token: `${h}.${Buffer.from('{sub').toString('base64url')}.${s}`, problem: 'malformed' },
      { name: 'payload a JSON array', token: `${h}.${b64([NSC])}.${s}`, problem: 'malformed' },
      { name: 'header a string', token: `${b64('ES256')}.${p}.${s}`, problem: 'malformed' },
      { name: 'longer than MAX_TOKEN_LENGTH', token: `${h}.${'A'.repeat(17_000)}.${s}`, problem: 'malformed' },
    ];
    for (const r of rows) {
      assert.throws(() => verifyToken(r.token, r.key ?? svid.leaf), (err: Error & { problem?: string; field?: string }) => {
        assert.equal(err.name, 'TokenError', r.name);
        assert.equal(err.problem, r.problem, r.name);
        assert.equal(err.field, 'token', r.name);
        assert.ok(!err.message.includes(s), `${r.name}: the message does not carry the whole token`);
        return true;
      });
    }
  });

  it('decodes without verifying (io.jwt.decode): claims of any signer', () => {
    const foreign = signToken({ sub: NSMGR, exp }, peer.privateKey);
    assert.equal(decodeToken(foreign).payload.sub, NSMGR);
    assert.equal(tokenSubject('not a token'), undefined);
    assert.equal(tokenSubject(signToken({ sub: 'nsmgr-1', exp }, svid.privateKey)), undefined, 'sub must be a SPIFFE ID');
  });
});

describe('compatibility with jose (ES256)', () => {
  it('jose verifies our tokens, with the audience and expiry it checks itself', async () => {
    const { token } = es256TokenGenerator(testX509Source(svid)).issue({ audience: NSMGR, peerNotAfter: peer.notAfter });
    const { payload, protectedHeader } = await jwtVerify(token, svid.leaf.publicKey, { algorithms: ['ES256'], audience: NSMGR, subject: NSC });
    assert.deepEqual(protectedHeader, { alg: 'ES256', typ: 'JWT' });
    assert.deepEqual(payload.aud, [NSMGR]);
    await assert.rejects(jwtVerify(token, peer.leaf.publicKey, { algorithms: ['ES256'] }), { code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  });

  it('we verify tokens jose signs', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', typ: 'JWT' }).setSubject(NSMGR).setAudience([NSC]).setExpirationTime(exp).sign(peer.privateKey);
    assert.deepEqual(verifyToken(token, peer.leaf).payload, { sub: NSMGR, aud: [NSC], exp });
    assert.throws(() => verifyToken(token, svid.leaf), { name: 'TokenError', problem: 'bad-signature' });
  });
});

describe('token cost', () => {
  it('signs and verifies fast enough for one token per hop of every Request', (t) => {
    const gen = es256TokenGenerator(testX509Source(svid));
    const n = 2000;
    let token = '';
    let start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) token = gen.issue({ audience: NSMGR, peerNotAfter: peer.notAfter }).token;
    const signPerS = n / (Number(process.hrtime.bigint() - start) / 1e9);
    start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) verifyToken(token, svid.leaf.publicKey);
    const verifyPerS = n / (Number(process.hrtime.bigint() - start) / 1e9);
    t.diagnostic(`ES256 issue ${Math.round(signPerS)}/s, verify ${Math.round(verifyPerS)}/s (${n} each, one core)`);
    // Far below what node:crypto does on one core; a floor that catches an accidental slow path (key
    // import or a thread-pool job per token), not a benchmark.
    assert.ok(signPerS > 1000, `issue ${signPerS}/s`);
    assert.ok(verifyPerS > 1000, `verify ${verifyPerS}/s`);
  });
});

describe('signer: the SVID a connection presented', () => {
  it('signs with an earlier SVID of its own source when asked, never with one it did not give; exp capped by the current SVID', () => {
    const first = makeTestSvid('spiffe://signer.test/nsmgr');
    const source = testX509Source(first);
    const tokens = es256TokenGenerator(source);
    tokens.issue();
    const second = makeTestSvid('spiffe://signer.test/nsmgr', { ttlMs: 120_000 });
    source.rotate(second);
    const old = tokens.issue({ signer: first });
    assert.doesNotThrow(() => verifyToken(old.token, first.leaf), 'signed with the presented (earlier) SVID');
    assert.ok(old.expires.getTime() <= second.notAfter.getTime());
    const stranger = makeTestSvid('spiffe://signer.test/nsmgr');
    const t = tokens.issue({ signer: stranger });
    assert.throws(() => verifyToken(t.token, stranger.leaf), { problem: 'bad-signature' }, 'a signer the source never gave is not used');
    assert.doesNotThrow(() => verifyToken(t.token, second.leaf));
  });
});
