import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.js';
import { formatRfc3339Nano, hs256TokenGenerator, parseRfc3339Nano } from './token.js';

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
});
