import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CLIENT_URL } from '../client-url/index.js';
import { Connection as ConnectionFns, State } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { networkServiceChain } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { arrayRegistries, ns, nse } from '../discover/testing.js';
import { FORWARDER_NAME, discoverForwarderServer, matchForwarders } from './index.js';

const P2P = { forwarder: { p2p: 'true' } };

function request(opts: { hint?: string; state?: State; labels?: Record<string, string> } = {}): NetworkServiceRequest {
  const segs = [{ name: 'nsc', id: 'nsc-0' }, { name: 'nsmgr', id: 'u1' }];
  if (opts.hint) segs.push({ name: opts.hint, id: 'u2' });
  return {
    connection: ConnectionFns.fromPartial({
      id: 'u1',
      networkService: 'svc',
      labels: opts.labels ?? {},
      state: opts.state ?? State.UP,
      path: { index: 1, pathSegments: segs },
    }),
    mechanismPreferences: [],
  };
}

function setup(forwarders = [nse('fwd-a', ['forwarder'], 'unix:///a', P2P), nse('fwd-b', ['forwarder'], 'unix:///b', P2P), nse('fwd-c', ['forwarder'], 'unix:///c', P2P)]) {
  const regs = arrayRegistries([ns({ name: 'svc' })], [...forwarders, nse('nse-1', ['svc'], 'unix:///nse')]);
  const calls: string[] = [];
  const closes: string[] = [];
  const down = new Set<string>();
  const chain = networkServiceChain('nsmgr', [discoverForwarderServer(regs, { nsmgrUrl: 'tcp://nsmgr:5001' })], {
    given: ['state'],
    tail: {
      request: async (r, ctx) => {
        const url = ctx.state.get(CLIENT_URL)!;
        calls.push(url);
        if (down.has(url)) throw new Error(`${url} unreachable`);
        return r.connection!;
      },
      close: async (_c, ctx) => void closes.push(String(ctx.state.get(CLIENT_URL))),
    },
  });
  return { regs, calls, closes, down, chain };
}

describe('discover-forwarder', () => {
  it('tries forwarders in registry order, stores the choice and queries with the NSMgr URL', async () => {
    const { chain, calls, down, regs } = setup();
    down.add('unix:///a');
    const ctx = newContext();
    await chain.request(request(), ctx);
    assert.deepEqual(calls, ['unix:///a', 'unix:///b']);
    assert.equal(ctx.state.get(FORWARDER_NAME), 'fwd-b');
    const q = regs.nseQueries[0].networkServiceEndpoint!;
    assert.deepEqual([q.networkServiceNames, q.url, q.name], [['forwarder'], 'tcp://nsmgr:5001', '']);
  });

  it('keeps the stored forwarder (and only it) on re-request', async () => {
    const { chain, calls, down, regs } = setup();
    const ctx = newContext();
    await chain.request(request(), ctx);
    await chain.request(request(), ctx);
    assert.deepEqual(calls, ['unix:///a', 'unix:///a']);
    assert.equal(regs.nseQueries[1].networkServiceEndpoint!.name, 'fwd-a');
    down.add('unix:///a');
    await assert.rejects(chain.request(request(), ctx), /unreachable/);
    regs.endpoints.splice(0, 1);
    await assert.rejects(chain.request(request(), ctx), (e: Error) => e.name === 'NotFoundError' && e.message.includes('fwd-a'));
  });

  it('first request prefers the forwarder named in the next path segment (NSMgr restart)', async () => {
    const { chain, calls } = setup();
    const ctx = newContext();
    await chain.request(request({ hint: 'fwd-c' }), ctx);
    assert.deepEqual(calls, ['unix:///c']);
    assert.equal(ctx.state.get(FORWARDER_NAME), 'fwd-c');
  });

  it('RESELECT_REQUESTED forgets the stored forwarder and ignores the path hint', async () => {
    const { chain, calls, down } = setup();
    const ctx = newContext();
    await chain.request(request({ hint: 'fwd-b' }), ctx);
    down.add('unix:///b');
    await chain.request(request({ hint: 'fwd-b', state: State.RESELECT_REQUESTED }), ctx);
    assert.deepEqual(calls, ['unix:///b', 'unix:///a']);
    assert.equal(ctx.state.get(FORWARDER_NAME), 'fwd-a');
  });

  it('all forwarders failing → UnavailableError; none registered → NotFoundError; NS missing → NotFoundError', async () => {
    const { chain, down, regs } = setup();
    for (const u of ['unix:///a', 'unix:///b', 'unix:///c']) down.add(u);
    await assert.rejects(chain.request(request(), newContext()), { name: 'UnavailableError' });
    regs.endpoints.length = 0;
    await assert.rejects(chain.request(request(), newContext()), { name: 'NotFoundError' });
    regs.services.length = 0;
    await assert.rejects(chain.request(request(), newContext()), (e: Error) => e.name === 'NotFoundError' && e.message.includes('"svc"'));
  });

  it('matches forwarder labels from match metadata (default p2p=true), with templates and fallthrough', () => {
    const fwds = [
      nse('plain', ['forwarder'], 'u1', { forwarder: { p2p: 'true' } }),
      nse('sriov', ['forwarder'], 'u2', { forwarder: { p2p: 'true', sriov: 'true', node: 'n1' } }),
      nse('nolabels', ['forwarder'], 'u3'),
    ];
    assert.deepEqual(matchForwarders({}, ns({ name: 's' }), fwds).map((f) => f.name), ['plain', 'sriov', 'nolabels']);
    assert.deepEqual(matchForwarders({}, ns({ name: 's', matches: [{ sourceSelector: {} }] }), fwds).map((f) => f.name), ['plain', 'sriov']);
    const svc = ns({
      name: 's',
      matches: [
        { sourceSelector: { want: 'sriov' }, metadata: { labels: { sriov: 'true', node: '{{.nodeName}}' } }, fallthrough: true },
        { sourceSelector: {}, metadata: { labels: { p2p: 'true' } } },
      ],
    });
    assert.deepEqual(matchForwarders({ want: 'sriov', nodeName: 'n1' }, svc, fwds).map((f) => f.name), ['sriov']);
    assert.deepEqual(matchForwarders({ want: 'sriov', nodeName: 'n2' }, svc, fwds).map((f) => f.name), ['plain', 'sriov']);
  });

  it('close uses the stored forwarder, else the next segment, and always calls next', async () => {
    const { chain, closes, regs } = setup();
    const ctx = newContext();
    const conn = await chain.request(request(), ctx);
    await chain.close(conn, ctx);
    assert.equal(ctx.state.get(FORWARDER_NAME), undefined);
    const withHint = request({ hint: 'fwd-c' }).connection!;
    await chain.close(withHint, newContext());
    regs.down = true;
    await chain.close(withHint, newContext());
    await chain.close(request().connection!, newContext());
    assert.deepEqual(closes, ['unix:///a', 'unix:///c', 'undefined', 'undefined']);
  });
});
