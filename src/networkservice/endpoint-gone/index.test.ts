import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { networkServiceChain } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { InvalidArgumentError, NotFoundError, UnavailableError } from '../../core/errors.js';
import { count } from '../../testing/count.js';
import { ALWAYS, injectError } from '../../testing/inject-error.js';
import { defaultRequest } from '../../testing/requests.js';
import { endpointGoneServer } from './index.js';

const request = (nse?: string) => {
  const req = defaultRequest({ id: 'c1' });
  if (nse) req.connection!.networkServiceEndpointName = nse;
  return req;
};

const failing = (error: () => Error) => networkServiceChain('t', [endpointGoneServer(), injectError({ requests: ALWAYS, closes: ALWAYS, error })]);

describe('endpoint-gone server', () => {
  it('an unreachable next hop becomes NotFoundError naming the endpoint, with the original as cause', async () => {
    const unavailable = new UnavailableError('connect ECONNREFUSED');
    const err = await failing(() => unavailable)
      .request(request('nse-1'), newContext())
      .then(() => assert.fail('resolved'), (e: unknown) => e);
    assert.ok(err instanceof NotFoundError);
    assert.match(err.message, /nse-1/);
    assert.equal(err.cause, unavailable);
  });

  it('without an endpoint name the error still becomes NotFoundError', async () => {
    await assert.rejects(failing(() => new UnavailableError('down')).request(request(), newContext()), NotFoundError);
  });

  it('other errors pass unchanged', async () => {
    const invalid = new InvalidArgumentError('x', 1, 'bad');
    await assert.rejects(failing(() => invalid).request(request('nse-1'), newContext()), (e) => e === invalid);
    const notFound = new NotFoundError('no such service');
    await assert.rejects(failing(() => notFound).request(request('nse-1'), newContext()), (e) => e === notFound);
  });

  it('a cancelled call keeps its UnavailableError (the endpoint is not known to be gone)', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(failing(() => new UnavailableError('cancelled')).request(request('nse-1'), newContext({ signal: ac.signal })), UnavailableError);
  });

  it('success and Close pass through; Close errors are not translated', async () => {
    const counter = count();
    const ok = networkServiceChain('t', [endpointGoneServer(), counter]);
    const conn = await ok.request(request('nse-1'), newContext());
    assert.equal(conn.id, 'c1');
    await ok.close(conn, newContext());
    assert.deepEqual([counter.requests, counter.closes], [1, 1]);
    await assert.rejects(failing(() => new UnavailableError('down')).close(conn, newContext()), UnavailableError);
  });
});
