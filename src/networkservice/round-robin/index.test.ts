import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CLIENT_URL } from '../client-url/index.js';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { networkServiceChain } from '../../core/chain.js';
import { ChainOrderError } from '../../core/errors.js';
import { newContext } from '../../core/context.js';
import { discoverServer } from '../discover/index.js';
import { arrayRegistries, ns, nse } from '../discover/testing.js';
import { roundRobinServer } from './index.js';


function request(nseName = ''): NetworkServiceRequest {
  return { connection: ConnectionFns.fromPartial({ id: 'c1', networkService: 'svc', networkServiceEndpointName: nseName }), mechanismPreferences: [] };
}

function setup(endpoints = [nse('a', ['svc'], 'unix:///a'), nse('b', ['svc'], 'unix:///b'), nse('c', ['svc'], 'unix:///c')], down = new Set<string>()) {
  const regs = arrayRegistries([ns({ name: 'svc' })], endpoints);
  const calls: string[] = [];
  const closes: string[] = [];
  const chain = networkServiceChain('fwd', [discoverServer(regs), roundRobinServer()], {
    tail: {
      request: async (r, ctx) => {
        const url = ctx.state.get(CLIENT_URL)!;
        calls.push(`${r.connection!.networkServiceEndpointName}@${url}`);
        if (down.has(url)) throw new Error(`${url} unreachable`);
        return r.connection!;
      },
      close: async (c, ctx) => {
        closes.push(`${c.networkServiceEndpointName}@${ctx.state.get(CLIENT_URL)}`);
      },
    },
  });
  return { regs, calls, closes, chain, down };
}

describe('round robin', () => {
  it('rotates over candidates per service and sets the NSE name and URL', async () => {
    const { chain, calls } = setup();
    const names: string[] = [];
    for (let i = 0; i < 4; i++) names.push((await chain.request(request(), newContext())).networkServiceEndpointName);
    assert.deepEqual(names, ['a', 'b', 'c', 'a']);
    assert.deepEqual(calls, ['a@unix:///a', 'b@unix:///b', 'c@unix:///c', 'a@unix:///a']);
  });

  it('tries the next candidate on error, up to n attempts, then fails', async () => {
    const { chain, calls, down } = setup(undefined, new Set(['unix:///a']));
    const conn = await chain.request(request(), newContext());
    assert.equal(conn.networkServiceEndpointName, 'b');
    assert.deepEqual(calls, ['a@unix:///a', 'b@unix:///b']);
    down.add('unix:///b').add('unix:///c');
    await assert.rejects(chain.request(request(), newContext()), (e: Error) => e.name === 'UnavailableError' && /all 3 endpoints failed/.test(e.message));
    assert.equal(calls.length, 5);
  });

  it('a named NSE is used as is and does not move the counter', async () => {
    const { chain, calls } = setup();
    await chain.request(request('c'), newContext());
    await chain.request(request('c'), newContext());
    await chain.request(request(), newContext());
    assert.deepEqual(calls, ['c@unix:///c', 'c@unix:///c', 'a@unix:///a']);
  });

  it('a single failing candidate rethrows its own error', async () => {
    const { chain } = setup([nse('a', ['svc'], 'unix:///a')], new Set(['unix:///a']));
    await assert.rejects(chain.request(request(), newContext()), /unreachable/);
  });

  it('close points connect at the named NSE and always calls next', async () => {
    const { chain, closes, regs } = setup();
    const ctx = newContext();
    const conn = await chain.request(request(), ctx);
    await chain.close(conn, ctx);
    regs.down = true;
    await chain.close(ConnectionFns.fromPartial({ id: 'c1', networkService: 'svc', networkServiceEndpointName: 'b' }), newContext());
    assert.deepEqual(closes, ['a@unix:///a', 'b@undefined']);
  });

  it('requires discover before it', () => {
    assert.throws(() => networkServiceChain('bad', [roundRobinServer()]), ChainOrderError);
  });
});
