import { Status } from 'nice-grpc';
import { toServerError } from '../../core/errors.js';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection } from '../../api/gen/connection.js';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { type NetworkServiceElement, networkServiceChain, passThrough } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { groupIpamServer, parseCidrGroups, point2pointIpamServer, strictIpamServer } from './index.js';

function request(id: string, ip: { src?: string[]; dst?: string[]; excluded?: string[] } = {}): NetworkServiceRequest {
  return {
    connection: ConnectionFns.fromPartial({
      id,
      networkService: 'dataplane-interrupt',
      context: { ipContext: { srcIpAddrs: ip.src ?? [], dstIpAddrs: ip.dst ?? [], excludedPrefixes: ip.excluded ?? [] } },
    }),
    mechanismPreferences: [],
  };
}

function ipOf(c: Connection) {
  const ipc = c.context!.ipContext!;
  return { src: ipc.srcIpAddrs, dst: ipc.dstIpAddrs, srcRoutes: ipc.srcRoutes.map((r) => r.prefix), dstRoutes: ipc.dstRoutes.map((r) => r.prefix) };
}

const chainOf = (...els: NetworkServiceElement[]) => networkServiceChain('test', els);

/** Fails requests while `fail.on` is true. */
function failing(fail: { on: boolean }): NetworkServiceElement {
  return passThrough('fail', {
    request: async (req, ctx, next) => {
      if (fail.on) throw new Error('injected');
      return next.request(req, ctx);
    },
  });
}

describe('point2point ipam', () => {
  it('seed /31: NSE .100 (dst), NSC .101 (src), with routes', async () => {
    const chain = chainOf(point2pointIpamServer(['172.16.1.100/31']));
    const conn = await chain.request(request('c1'), newContext());
    assert.deepEqual(ipOf(conn), {
      src: ['172.16.1.101/32'],
      dst: ['172.16.1.100/32'],
      srcRoutes: ['172.16.1.100/32'],
      dstRoutes: ['172.16.1.101/32'],
    });
  });

  it('is idempotent for the same connection id and exhausts for another one', async () => {
    const chain = chainOf(point2pointIpamServer(['172.16.1.100/31']));
    const first = await chain.request(request('c1'), newContext());
    const again = await chain.request({ connection: first, mechanismPreferences: [] }, newContext());
    assert.deepEqual(ipOf(again), ipOf(first));
    const fresh = await chain.request(request('c1'), newContext());
    assert.deepEqual(ipOf(fresh), ipOf(first));
    await assert.rejects(chain.request(request('c2'), newContext()), (err: Error) => {
      assert.equal(err.name, 'IpamExhaustedError');
      assert.equal(toServerError(err).code, Status.RESOURCE_EXHAUSTED, 'RESOURCE_EXHAUSTED at the edge, not UNKNOWN');
      return true;
    });
  });

  it('frees on Close', async () => {
    const chain = chainOf(point2pointIpamServer(['172.16.1.100/31']));
    const c1 = await chain.request(request('c1'), newContext());
    await chain.close(c1, newContext());
    const c2 = await chain.request(request('c2'), newContext());
    assert.deepEqual(ipOf(c2).src, ['172.16.1.101/32']);
  });

  it('frees when the first request fails downstream, keeps on a failed re-request', async () => {
    const fail = { on: true };
    const chain = chainOf(point2pointIpamServer(['10.0.0.0/30']), failing(fail));
    await assert.rejects(chain.request(request('c1'), newContext()));
    fail.on = false;
    const c2 = await chain.request(request('c2'), newContext());
    assert.deepEqual(ipOf(c2).dst, ['10.0.0.0/32']);
    fail.on = true;
    await assert.rejects(chain.request({ connection: c2, mechanismPreferences: [] }, newContext()));
    fail.on = false;
    const c3 = await chain.request(request('c3'), newContext());
    assert.deepEqual([ipOf(c3).dst, ipOf(c3).src], [['10.0.0.2/32'], ['10.0.0.3/32']]);
  });

  it('recovers the request addresses after a restart (new instance)', async () => {
    const before = await chainOf(point2pointIpamServer(['10.0.0.0/29'])).request(request('other'), newContext());
    assert.deepEqual(ipOf(before).dst, ['10.0.0.0/32']);
    const restarted = chainOf(point2pointIpamServer(['10.0.0.0/29']));
    const conn = await restarted.request(request('c1', { src: ['10.0.0.5/32'], dst: ['10.0.0.4/32'] }), newContext());
    assert.deepEqual(ipOf(conn), { src: ['10.0.0.5/32'], dst: ['10.0.0.4/32'], srcRoutes: ['10.0.0.4/32'], dstRoutes: ['10.0.0.5/32'] });
    // The recovered ones are taken: the next connection gets the lowest free pair.
    const other = await restarted.request(request('c2'), newContext());
    assert.deepEqual([ipOf(other).dst, ipOf(other).src], [['10.0.0.0/32'], ['10.0.0.1/32']]);
  });

  it('appends new addresses when the requested ones are not in the pool or taken', async () => {
    const chain = chainOf(point2pointIpamServer(['172.16.1.102/31']));
    const conn = await chain.request(request('c1', { src: ['172.16.1.101/32'], dst: ['172.16.1.100/32'] }), newContext());
    assert.deepEqual(ipOf(conn).src, ['172.16.1.101/32', '172.16.1.103/32']);
    assert.deepEqual(ipOf(conn).dst, ['172.16.1.100/32', '172.16.1.102/32']);
  });

  it('honours excluded_prefixes and re-allocates when held addresses become excluded', async () => {
    const chain = chainOf(point2pointIpamServer(['10.0.0.0/29']));
    const conn = await chain.request(request('c1', { excluded: ['10.0.0.0/31'] }), newContext());
    assert.deepEqual([ipOf(conn).dst, ipOf(conn).src], [['10.0.0.2/32'], ['10.0.0.3/32']]);
    conn.context!.ipContext!.excludedPrefixes = ['10.0.0.0/30'];
    const moved = await chain.request({ connection: conn, mechanismPreferences: [] }, newContext());
    assert.deepEqual(ipOf(moved), { src: ['10.0.0.5/32'], dst: ['10.0.0.4/32'], srcRoutes: ['10.0.0.4/32'], dstRoutes: ['10.0.0.5/32'] });
    await assert.rejects(chain.request(request('c2', { excluded: ['10.0.0.0/29'] }), newContext()), { name: 'IpamExhaustedError' });
    await assert.rejects(chain.request(request('c3', { excluded: ['bogus'] }), newContext()), (e: Error & { field?: string }) =>
      e.name === 'InvalidArgumentError' && e.field === 'excluded_prefixes');
  });

  it('exhausts a pool with a single free address', async () => {
    const chain = chainOf(point2pointIpamServer(['10.0.0.1/32']));
    await assert.rejects(chain.request(request('c1'), newContext()), { name: 'IpamExhaustedError' });
  });

  it('falls over to the next prefix of the same family', async () => {
    const chain = chainOf(point2pointIpamServer(['10.0.0.0/31', '10.1.0.0/31']));
    await chain.request(request('c1'), newContext());
    const c2 = await chain.request(request('c2'), newContext());
    assert.deepEqual(ipOf(c2).dst, ['10.1.0.0/32']);
  });

  it('dual stack from one v4+v6 prefix list, /128 entries', async () => {
    const chain = chainOf(point2pointIpamServer(['10.0.0.0/24', 'fd00::/120']));
    const conn = await chain.request(request('c1'), newContext());
    assert.deepEqual(ipOf(conn), {
      src: ['10.0.0.1/32', 'fd00::1/128'],
      dst: ['10.0.0.0/32', 'fd00::/128'],
      srcRoutes: ['10.0.0.0/32', 'fd00::/128'],
      dstRoutes: ['10.0.0.1/32', 'fd00::1/128'],
    });
  });

  it('rejects bad prefixes naming the field', () => {
    assert.throws(() => point2pointIpamServer(['10.0.0.0/33']), (e: Error & { field?: string; value?: unknown }) =>
      e.name === 'InvalidArgumentError' && e.field === 'NSM_CIDR_PREFIX' && e.value === '10.0.0.0/33');
    assert.throws(() => point2pointIpamServer([]), { name: 'InvalidArgumentError' });
  });
});

describe('group ipam', () => {
  it('parses NSM_CIDR_PREFIX groups', () => {
    assert.deepEqual(parseCidrGroups('[10.0.0.0/24,fd00::/120],172.16.1.100/31'), [['10.0.0.0/24', 'fd00::/120'], ['172.16.1.100/31']]);
    assert.deepEqual(parseCidrGroups('172.16.1.100/31'), [['172.16.1.100/31']]);
    assert.deepEqual(parseCidrGroups(' 10.0.0.0/8 , [ 10.1.0.0/16 ] '), [['10.0.0.0/8'], ['10.1.0.0/16']]);
    for (const bad of ['', '[10.0.0.0/8', '10.0.0.0/8]', '[]', '[[10.0.0.0/8]]', '10.0.0.0/8,nope', '10.0.0.0/8[10.1.0.0/16]']) {
      assert.throws(() => parseCidrGroups(bad), (e: Error & { field?: string; value?: unknown }) =>
        e.name === 'InvalidArgumentError' && e.field === 'NSM_CIDR_PREFIX' && e.value === bad, bad);
    }
  });

  it('one IPAM per group: separate groups each allocate (dual stack)', async () => {
    const chain = chainOf(groupIpamServer(parseCidrGroups('172.16.1.100/31,2004::/127')));
    const conn = await chain.request(request('c1'), newContext());
    assert.deepEqual(ipOf(conn).src, ['172.16.1.101/32', '2004::1/128']);
    assert.deepEqual(ipOf(conn).dst, ['172.16.1.100/32', '2004::/128']);
    await chain.close(conn, newContext());
    const again = await chain.request(request('c2'), newContext());
    assert.deepEqual(ipOf(again).src, ['172.16.1.101/32', '2004::1/128']);
  });

  it('polite keeps a foreign requested address and appends; strict resets it', async () => {
    const foreign = { src: ['192.168.0.1/32'], dst: ['192.168.0.0/32'], excluded: ['172.16.1.0/31'] };
    const polite = chainOf(groupIpamServer([['172.16.1.100/31']]));
    const p = await polite.request(request('c1', foreign), newContext());
    assert.deepEqual(ipOf(p).src, ['192.168.0.1/32', '172.16.1.101/32']);
    const strict = chainOf(groupIpamServer([['172.16.1.100/31']], { policy: 'strict' }));
    const s = await strict.request(request('c1', foreign), newContext());
    assert.deepEqual(ipOf(s), { src: ['172.16.1.101/32'], dst: ['172.16.1.100/32'], srcRoutes: ['172.16.1.100/32'], dstRoutes: ['172.16.1.101/32'] });
    assert.deepEqual(s.context!.ipContext!.excludedPrefixes, ['172.16.1.0/31']);
  });

  it('strict keeps in-pool requested addresses (recovery works)', async () => {
    const chain = chainOf(strictIpamServer(['10.0.0.0/29']), point2pointIpamServer(['10.0.0.0/29']));
    const conn = await chain.request(request('c1', { src: ['10.0.0.7/32'], dst: ['10.0.0.6/32'] }), newContext());
    assert.deepEqual([ipOf(conn).src, ipOf(conn).dst], [['10.0.0.7/32'], ['10.0.0.6/32']]);
  });

  it('rejects an unknown policy', () => {
    assert.throws(() => groupIpamServer([['10.0.0.0/24']], { policy: 'rude' as never }), (e: Error & { field?: string }) => e.field === 'NSM_IPAM_POLICY');
  });
});
