import { test } from 'node:test';
import assert from 'node:assert/strict';
import { endsFromIpContext, type IpContextInput } from './ipcontext.js';
import type { RouteSpec } from './types.js';

interface Row {
  name: string;
  ctx: IpContextInput;
  nsc: { addrs: string[]; routes: RouteSpec[] };
  nse: { addrs: string[]; routes: RouteSpec[] };
}

const rows: Row[] = [
  {
    name: 'point-to-point /32 (the dataplane-interrupt example)',
    ctx: { srcIpAddrs: ['172.16.1.101/32'], dstIpAddrs: ['172.16.1.100/32'], srcRoutes: [{ prefix: '172.16.1.100/32', nextHop: '' }], dstRoutes: [{ prefix: '172.16.1.101/32', nextHop: '' }] },
    nsc: { addrs: ['172.16.1.101/32'], routes: [{ prefix: '172.16.1.100/32' }] },
    nse: { addrs: ['172.16.1.100/32'], routes: [{ prefix: '172.16.1.101/32' }] },
  },
  {
    name: 'shared subnet: no link routes',
    ctx: { srcIpAddrs: ['10.0.0.2/24'], dstIpAddrs: ['10.0.0.1/24'] },
    nsc: { addrs: ['10.0.0.2/24'], routes: [] },
    nse: { addrs: ['10.0.0.1/24'], routes: [] },
  },
  {
    name: 'src route outside dst nets gets the first dst address as next hop',
    ctx: { srcIpAddrs: ['172.16.1.101/32'], dstIpAddrs: ['172.16.1.100/32', '172.16.9.1/32'], srcRoutes: [{ prefix: '10.96.0.0/12', nextHop: '' }] },
    nsc: { addrs: ['172.16.1.101/32'], routes: [{ prefix: '172.16.1.100/32' }, { prefix: '172.16.9.1/32' }, { prefix: '10.96.0.0/12', via: '172.16.1.100' }] },
    nse: { addrs: ['172.16.1.100/32', '172.16.9.1/32'], routes: [{ prefix: '172.16.1.101/32' }] },
  },
  {
    name: 'explicit next hop is kept; prefix host bits cleared',
    ctx: { srcIpAddrs: ['172.16.1.101/32'], dstIpAddrs: ['172.16.1.100/32'], dstRoutes: [{ prefix: '192.168.7.9/24', nextHop: '172.16.1.101' }] },
    nsc: { addrs: ['172.16.1.101/32'], routes: [{ prefix: '172.16.1.100/32' }] },
    nse: { addrs: ['172.16.1.100/32'], routes: [{ prefix: '172.16.1.101/32' }, { prefix: '192.168.7.0/24', via: '172.16.1.101' }] },
  },
  {
    name: 'dst route inside src nets stays a link route',
    ctx: { srcIpAddrs: ['10.1.0.2/16'], dstIpAddrs: ['172.16.1.100/32'], dstRoutes: [{ prefix: '10.1.5.0/24', nextHop: '' }] },
    nsc: { addrs: ['10.1.0.2/16'], routes: [{ prefix: '172.16.1.100/32' }] },
    nse: { addrs: ['172.16.1.100/32'], routes: [{ prefix: '10.1.0.0/16' }, { prefix: '10.1.5.0/24' }] },
  },
  {
    name: 'IPv6, canonical forms',
    ctx: { srcIpAddrs: ['FD00:0::101/128'], dstIpAddrs: ['fd00::100/128'], srcRoutes: [{ prefix: 'fd10::/64', nextHop: '' }] },
    nsc: { addrs: ['fd00::101/128'], routes: [{ prefix: 'fd00::100/128' }, { prefix: 'fd10::/64', via: 'fd00::100' }] },
    nse: { addrs: ['fd00::100/128'], routes: [{ prefix: 'fd00::101/128' }] },
  },
  {
    name: 'dual stack: next hop chosen per family; no dst of a family → link route',
    ctx: {
      srcIpAddrs: ['172.16.1.101/32', 'fd00::101/128'],
      dstIpAddrs: ['fd00::100/128', '172.16.1.100/32'],
      srcRoutes: [{ prefix: '10.0.0.0/8', nextHop: '' }, { prefix: '::/0', nextHop: '' }],
      dstRoutes: [{ prefix: '10.200.0.0/16', nextHop: '' }],
    },
    nsc: {
      addrs: ['172.16.1.101/32', 'fd00::101/128'],
      routes: [{ prefix: 'fd00::100/128' }, { prefix: '172.16.1.100/32' }, { prefix: '10.0.0.0/8', via: '172.16.1.100' }, { prefix: '::/0', via: 'fd00::100' }],
    },
    nse: { addrs: ['fd00::100/128', '172.16.1.100/32'], routes: [{ prefix: '172.16.1.101/32' }, { prefix: 'fd00::101/128' }, { prefix: '10.200.0.0/16', via: '172.16.1.101' }] },
  },
  {
    name: 'a src route equal to the link route replaces it (last wins)',
    ctx: { srcIpAddrs: ['172.16.1.101/32'], dstIpAddrs: ['172.16.1.100/32'], srcRoutes: [{ prefix: '172.16.1.100/32', nextHop: '172.16.1.100' }] },
    nsc: { addrs: ['172.16.1.101/32'], routes: [{ prefix: '172.16.1.100/32', via: '172.16.1.100' }] },
    nse: { addrs: ['172.16.1.100/32'], routes: [{ prefix: '172.16.1.101/32' }] },
  },
  { name: 'empty context', ctx: {}, nsc: { addrs: [], routes: [] }, nse: { addrs: [], routes: [] } },
];

for (const row of rows) {
  test(`endsFromIpContext: ${row.name}`, () => {
    assert.deepEqual(endsFromIpContext(row.ctx), { nsc: row.nsc, nse: row.nse });
  });
}

test('endsFromIpContext: a bad address names the field', () => {
  assert.throws(() => endsFromIpContext({ srcIpAddrs: ['172.16.1.300/32'] }), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === 'srcIpAddrs[0]');
  assert.throws(() => endsFromIpContext({ dstRoutes: [{ prefix: '10.0.0.0/8', nextHop: 'fd00::1' }] }), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === 'dstRoutes[0].via');
});
