import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.js';
import { clientTokenMetadata, formatRfc3339Nano, hs256TokenGenerator, parseRfc3339Nano, readClientToken } from './token.js';

describe('token', () => {
  it('issues HS256 JWTs that expire after maxTokenLifetime', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const gen = hs256TokenGenerator({ clock, maxTokenLifetime: 60_000, subject: 'spiffe://test.com/subject' });
    const { token, expires } = await gen.generate({ audience: 'nsmgr' });
    assert.equal(expires.getTime(), 1_700_000_060_000);
    const claims = await gen.verify(token);
    assert.equal(claims.sub, 'spiffe://test.com/subject');
    assert.equal(claims.aud, 'nsmgr');
    await clock.advance(61_000);
    await assert.rejects(gen.verify(token), { name: 'InvalidArgumentError' });
    await assert.rejects(hs256TokenGenerator().verify(token), { name: 'InvalidArgumentError' });
  });

  it('rejects a silly lifetime', () => {
    assert.throws(() => hs256TokenGenerator({ maxTokenLifetime: 0 }), { name: 'InvalidArgumentError' });
  });

  it('formats and parses RFC3339Nano like Go', () => {
    assert.equal(formatRfc3339Nano(new Date('2024-01-02T03:04:05.000Z')), '2024-01-02T03:04:05Z');
    assert.equal(formatRfc3339Nano(new Date('2024-01-02T03:04:05.120Z')), '2024-01-02T03:04:05.12Z');
    assert.equal(parseRfc3339Nano('2024-01-02T03:04:05.123456789Z').toISOString(), '2024-01-02T03:04:05.123Z');
    assert.equal(parseRfc3339Nano('2024-01-02T05:04:05+02:00').toISOString(), '2024-01-02T03:04:05.000Z');
    assert.throws(() => parseRfc3339Nano('yesterday', 'nsm-client-token-expires'), { name: 'InvalidArgumentError' });
  });

  it('caps exp at the peer certificate NotAfter', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    const gen = hs256TokenGenerator({ clock, maxTokenLifetime: 600_000 });
    const { expires } = await gen.generate({ peerNotAfter: new Date(1_700_000_030_500) });
    assert.equal(expires.getTime(), 1_700_000_030_000);
  });

  it('writes and reads the nsm-client-token metadata (upstream token.FromContext)', () => {
    const md = clientTokenMetadata({ token: 'jwt', expires: new Date('2030-01-02T03:04:05.120Z') });
    assert.deepEqual(md, { 'nsm-client-token': 'jwt', 'nsm-client-token-expires': '2030-01-02T03:04:05.12Z' });
    assert.deepEqual(readClientToken(md), { token: 'jwt', expires: new Date('2030-01-02T03:04:05.120Z') });
    assert.equal(readClientToken({}), undefined, 'no token: an in-process call or a peer without per-RPC credentials');
    assert.equal(readClientToken({ 'nsm-client-token': '' }), undefined);
    const rows: [string, Record<string, string>, string][] = [
      ['token without expiry', { 'nsm-client-token': 'jwt' }, 'nsm-client-token-expires'],
      ['unreadable expiry', { 'nsm-client-token': 'jwt', 'nsm-client-token-expires': 'in ten minutes' }, 'nsm-client-token-expires'],
      ['token too long', { 'nsm-client-token': 'x'.repeat(16 * 1024 + 1), 'nsm-client-token-expires': '2030-01-01T00:00:00Z' }, 'nsm-client-token'],
    ];
    for (const [name, metadata, field] of rows) assert.throws(() => readClientToken(metadata), { name: 'InvalidArgumentError', field }, name);
  });
});
