import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MD_CLIENT_TOKEN, MD_CLIENT_TOKEN_EXPIRES } from '../../api/constants.js';
import { networkServiceChain } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { hs256TokenGenerator } from '../../core/token.js';
import { checkClose, checkRequest } from '../../testing/check-request.js';
import { defaultRequest } from '../../testing/requests.js';
import { updatePathServer } from '../update-path/index.js';
import { updateTokenServer } from './index.js';

describe('update-token server', () => {
  const clock = new FakeClock(1_700_000_000_000);
  const tokens = hs256TokenGenerator({ clock, maxTokenLifetime: 60_000 });
  const req = () => defaultRequest({ id: 'a', pathSegments: [{ name: 'nsc', id: 'a', token: 'old' }] });

  it('takes the previous token from metadata and issues its own', async () => {
    let seen: ReturnType<typeof req>['connection'];
    const chain = networkServiceChain('t', [updatePathServer({ name: 'nsmgr' }), updateTokenServer({ tokens }), checkRequest((r) => void (seen = r.connection))]);
    const md = { [MD_CLIENT_TOKEN]: 'client-jwt', [MD_CLIENT_TOKEN_EXPIRES]: '2030-01-01T00:00:00.5Z' };
    await chain.request(req(), newContext({ metadata: md }));
    const [prev, own] = seen!.path!.pathSegments;
    assert.equal(prev.token, 'client-jwt');
    assert.equal(prev.expires?.toISOString(), '2030-01-01T00:00:00.500Z');
    await tokens.verify(own.token);
    assert.equal(own.expires?.getTime(), 1_700_000_060_000);
  });

  it('keeps the previous token without metadata; also runs on Close', async () => {
    let closed: ReturnType<typeof req>['connection'];
    const chain = networkServiceChain('t', [updatePathServer({ name: 'nsmgr' }), updateTokenServer({ tokens }), checkClose((c) => void (closed = c))]);
    const conn = await chain.request(req(), newContext());
    assert.equal(conn.path!.pathSegments[0].token, 'old');
    await chain.close(conn, newContext());
    assert.notEqual(closed!.path!.pathSegments[1].token, '');
  });

  it('rejects a malformed expiry naming the key', async () => {
    const chain = networkServiceChain('t', [updatePathServer({ name: 'nsmgr' }), updateTokenServer({ tokens })]);
    await assert.rejects(
      chain.request(req(), newContext({ metadata: { [MD_CLIENT_TOKEN]: 'x', [MD_CLIENT_TOKEN_EXPIRES]: 'soon' } })),
      (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === MD_CLIENT_TOKEN_EXPIRES,
    );
    await assert.rejects(
      chain.request(req(), newContext({ metadata: { [MD_CLIENT_TOKEN]: 'x' } })),
      (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === MD_CLIENT_TOKEN_EXPIRES,
      'a token without its expiry',
    );
  });
});
