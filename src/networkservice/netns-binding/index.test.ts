import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { networkServiceChain } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import type { Peer } from '../../core/peer.js';
import { count } from '../../testing/count.js';
import { beginServer } from '../begin/index.js';
import { netnsBinding, trustNodeAndServer } from './index.js';

const A = 'inode://4/4026532001';
const B = 'inode://4/4026532002';
const peerIn = (netns: string): Peer => ({ netns });
const ctxFrom = (peer: Peer | undefined) => newContext({ peer: async () => peer });

function request(id: string, netns?: string): NetworkServiceRequest {
  const mech = netns ? [{ cls: 'LOCAL', type: 'KERNEL', parameters: { inodeURL: netns, name: 'nsm-1' } }] : [];
  return { connection: ConnectionFns.fromPartial({ id, networkService: 'svc' }), mechanismPreferences: mech };
}

function setup(options: Parameters<typeof netnsBinding>[0] = {}) {
  const counter = count();
  const chain = networkServiceChain('t', [beginServer({}), netnsBinding(options), counter]);
  return { chain, counter };
}

describe('netns-binding', () => {
  it('serves a client naming its own netns; refuses another netns with PermissionDenied naming it and the caller, before the rest of the chain', async () => {
    const { chain, counter } = setup();
    await chain.request(request('c1', A), ctxFrom(peerIn(A)));
    await assert.rejects(chain.request(request('c2', B), ctxFrom(peerIn(A))), (err: Error) => {
      assert.equal(err.name, 'PermissionDeniedError');
      assert.match(err.message, new RegExp(`netns ${B} does not belong to the caller \\(in netns ${A}\\)`));
      return true;
    });
    assert.equal(counter.requests, 1);
  });

  it('refuses an unknown caller (tcp, or gone) and a netns URL of another form that is not the caller\'s', async () => {
    const { chain, counter } = setup();
    await assert.rejects(chain.request(request('c1', A), ctxFrom(undefined)), /network namespace is unknown/);
    await assert.rejects(chain.request(request('c2', 'file:///nonexistent/ns'), ctxFrom(peerIn(A))), /does not belong/);
    assert.equal(counter.requests, 0);
  });

  it('does not check in-process calls (no peer) nor requests without a kernel mechanism', async () => {
    const { chain, counter } = setup();
    await chain.request(request('c1', B), newContext());
    await chain.request(request('c2'), ctxFrom(undefined));
    assert.equal(counter.requests, 2);
  });

  it('a trusted caller may name any netns', async () => {
    const { chain, counter } = setup({ trusted: (p) => p.netns === A });
    await chain.request(request('c1', B), ctxFrom(peerIn(A)));
    assert.equal(counter.requests, 1);
  });

  it('binds a connection to its first caller: a Close or re-Request of its id from another netns is refused, its own pass', async () => {
    const { chain, counter } = setup();
    const conn = await chain.request(request('c1', A), ctxFrom(peerIn(A)));
    await assert.rejects(chain.close(conn, ctxFrom(peerIn(B))), /connection c1 belongs to a client in netns/);
    await assert.rejects(chain.request(request('c1', B), ctxFrom(peerIn(B))), /connection c1 belongs to a client in netns/);
    assert.deepEqual([counter.requests, counter.closes], [1, 0]);
    await chain.request({ ...request('c1', A), connection: conn }, ctxFrom(peerIn(A)));
    await chain.close(conn, ctxFrom(peerIn(A)));
    assert.deepEqual([counter.requests, counter.closes], [2, 1]);
  });
});

describe('trustNodeAndServer', () => {
  it('trusts a caller in the own netns; nobody else when there is no server socket', async () => {
    const trusted = trustNodeAndServer({ ownNetns: A, serverPath: undefined });
    assert.equal(await trusted(peerIn(A)), true);
    assert.equal(await trusted(peerIn(B)), false);
  });
});
