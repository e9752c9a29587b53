import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Connection } from '../api/gen/connection.js';
import { MECH_KERNEL, PARAM_INODE_URL, PARAM_NAME } from '../api/constants.js';
import { expectedInterface, kernelFault, kernelObservation, type ExpectedInterface, type ObservedInterface } from './kernel-fault.js';

const P2P: ExpectedInterface = { ifname: 'nsm-1', src: ['172.16.1.101/32'], dst: ['172.16.1.100/32'] };
const HEALTHY: ObservedInterface = { exists: true, up: true, carrier: true, addrs: ['172.16.1.101/32'], routes: [{ prefix: '172.16.1.100/32' }] };

const cases: Array<{ name: string; want?: ExpectedInterface; seen: Partial<ObservedInterface>; reason?: string; detail?: string }> = [
  { name: 'point-to-point, as the data plane makes it', seen: {} },
  { name: 'missing', seen: { exists: false, up: false, carrier: false, addrs: [], routes: [] }, reason: 'missing', detail: 'interface nsm-1 is missing' },
  { name: 'admin down (before carrier)', seen: { up: false, carrier: false }, reason: 'down', detail: 'interface nsm-1 is down' },
  { name: 'no carrier', seen: { carrier: false }, reason: 'no-carrier', detail: 'interface nsm-1 has no carrier (peer down)' },
  { name: 'address gone', seen: { addrs: [] }, reason: 'address-missing', detail: 'address 172.16.1.101/32 missing on nsm-1' },
  { name: 'address with another prefix length still counts', seen: { addrs: ['172.16.1.101/24'] } },
  { name: 'route gone', seen: { routes: [] }, reason: 'route-missing', detail: 'route to 172.16.1.100 missing on nsm-1' },
  { name: 'address checked before route', seen: { addrs: [], routes: [] }, reason: 'address-missing' },
  { name: 'only an unrelated route left', seen: { routes: [{ prefix: '10.96.0.0/12', via: '172.16.1.100' }] }, reason: 'route-missing' },
  { name: 'a wider route covers the peer', seen: { routes: [{ prefix: '172.16.0.0/16' }] } },
  {
    name: 'on-link peer: same subnet, no route (the data plane adds none)',
    want: { ifname: 'nsm-1', src: ['172.16.1.101/24'], dst: ['172.16.1.100/24'] },
    seen: { addrs: ['172.16.1.101/24'], routes: [] },
  },
  {
    name: 'on-link peer whose address is gone',
    want: { ifname: 'nsm-1', src: ['172.16.1.101/24'], dst: ['172.16.1.100/24'] },
    seen: { addrs: [], routes: [] },
    reason: 'address-missing',
  },
  {
    name: 'host address does not make the peer on-link',
    want: { ifname: 'nsm-1', src: ['172.16.1.101/32'], dst: ['172.16.1.100/32'] },
    seen: { addrs: ['172.16.1.101/32', '172.16.1.100/32'], routes: [] },
    reason: 'route-missing',
  },
  {
    name: 'the peer address on the client itself is no path to the peer',
    want: { ifname: 'nsm-1', src: [], dst: ['172.16.1.100/24'] },
    seen: { addrs: ['172.16.1.100/24'], routes: [] },
    reason: 'route-missing',
  },
  {
    name: 'peer outside the client subnet: route to its network',
    want: { ifname: 'nsm-1', src: ['10.0.0.1/32'], dst: ['172.16.2.100/24'] },
    seen: { addrs: ['10.0.0.1/32'], routes: [{ prefix: '172.16.2.0/24' }] },
  },
  {
    name: 'IPv6, spelled differently than the kernel prints it',
    want: { ifname: 'nsm-1', src: ['FD00:0::101/128'], dst: ['fd00::100/128'] },
    seen: { addrs: ['fd00::101/128'], routes: [{ prefix: 'fd00::100/128' }] },
  },
  {
    name: 'IPv6 route gone; an IPv4 route does not cover it',
    want: { ifname: 'nsm-1', src: ['fd00::101/128'], dst: ['fd00::100/128'] },
    seen: { addrs: ['fd00::101/128'], routes: [{ prefix: '0.0.0.0/0' }] },
    reason: 'route-missing',
    detail: 'route to fd00::100 missing on nsm-1',
  },
  {
    name: 'dual stack: second family route gone',
    want: { ifname: 'nsm-1', src: ['172.16.1.101/32', 'fd00::101/128'], dst: ['172.16.1.100/32', 'fd00::100/128'] },
    seen: { addrs: ['172.16.1.101/32', 'fd00::101/128'], routes: [{ prefix: '172.16.1.100/32' }] },
    reason: 'route-missing',
  },
  { name: 'no addresses expected: up with carrier is healthy', want: { ifname: 'nsm-1', src: [], dst: [] }, seen: { addrs: [], routes: [] } },
];

describe('kernelFault', () => {
  for (const c of cases) {
    it(c.name, () => {
      const f = kernelFault(c.want ?? P2P, { ...HEALTHY, ...c.seen });
      assert.equal(f?.reason, c.reason);
      if (c.detail) assert.equal(f?.detail, c.detail);
    });
  }

  it('kernelObservation: a fault is a kernel observation with its reason', () => {
    assert.deepEqual(kernelObservation(undefined), { ok: true });
    assert.deepEqual(kernelObservation({ reason: 'down', detail: 'interface nsm-1 is down' }), { ok: false, source: 'kernel', detail: 'interface nsm-1 is down', reason: 'down' });
  });
});

describe('expectedInterface', () => {
  const conn = (mechanism: Connection['mechanism'], ipContext?: object) => ({ id: 'c', mechanism, context: ipContext ? { ipContext } : undefined }) as unknown as Connection;

  it('takes name, netns and addresses from a kernel mechanism', () => {
    const c = conn({ cls: 'LOCAL', type: MECH_KERNEL, parameters: { [PARAM_NAME]: 'nsm-1', [PARAM_INODE_URL]: 'inode://4/42' } } as never, { srcIpAddrs: ['a'], dstIpAddrs: ['b'] });
    assert.deepEqual(expectedInterface(c), { netns: 'inode://4/42', ifname: 'nsm-1', src: ['a'], dst: ['b'] });
  });

  it('nothing to check without a kernel mechanism or an interface name', () => {
    assert.equal(expectedInterface(conn(undefined)), undefined);
    assert.equal(expectedInterface(conn({ cls: 'LOCAL', type: 'MEMIF', parameters: { [PARAM_NAME]: 'x' } } as never)), undefined);
    assert.equal(expectedInterface(conn({ cls: 'LOCAL', type: MECH_KERNEL, parameters: {} } as never)), undefined);
  });

  it('no IP context: no addresses expected', () => {
    assert.deepEqual(expectedInterface(conn({ cls: 'LOCAL', type: MECH_KERNEL, parameters: { [PARAM_NAME]: 'nsm-1' } } as never)), { ifname: 'nsm-1', src: [], dst: [] });
  });
});
