import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidArgumentError } from '../../../core/errors.js';
import { compareIps, ipParam, isLocalUrl, lowerMtu, mtuParam, portParam, tunnelMtu } from './index.js';

const m = (parameters: Record<string, string>) => ({ cls: 'REMOTE', type: 'VXLAN', parameters });

describe('remote mechanism parameters', () => {
  it('tunnel MTU takes off the overlay cost of the family', () => {
    const table: Array<[string, string, number, number]> = [
      ['VXLAN', '10.0.0.1', 1500, 1450],
      ['VXLAN', 'fd00::1', 1500, 1430],
      ['WIREGUARD', '10.0.0.1', 1500, 1440],
      ['WIREGUARD', 'fd00::1', 9000, 8920],
    ];
    for (const [type, ip, underlay, want] of table) assert.equal(tunnelMtu(type, ip, underlay), want, `${type} ${ip}`);
  });

  it('checks name the parameter and the value', () => {
    const table: Array<[() => unknown, string]> = [
      [() => ipParam(m({}), 'src_ip'), 'VXLAN.parameters.src_ip'],
      [() => ipParam(m({ src_ip: '10.0.0.300' }), 'src_ip'), 'VXLAN.parameters.src_ip'],
      [() => portParam(m({ dst_port: '0' }), 'dst_port'), 'VXLAN.parameters.dst_port'],
      [() => portParam(m({ dst_port: '65536' }), 'dst_port'), 'VXLAN.parameters.dst_port'],
      [() => portParam(m({ dst_port: '47x' }), 'dst_port'), 'VXLAN.parameters.dst_port'],
      [() => mtuParam(m({ MTU: '100' })), 'VXLAN.parameters.MTU'],
    ];
    for (const [f, field] of table) assert.throws(f, (e: Error) => e instanceof InvalidArgumentError && e.field === field, field);
    assert.equal(ipParam(m({ dst_ip: 'fd00::2' }), 'dst_ip'), 'fd00::2');
    assert.equal(portParam(m({ src_port: '4789' }), 'src_port'), 4789);
    assert.equal(mtuParam(m({})), undefined);
  });

  it('lowerMtu keeps the smaller of offered and own', () => {
    const a = m({ MTU: '1400' });
    lowerMtu(a, 1450);
    const b = m({ MTU: '1500' });
    lowerMtu(b, 1450);
    const c = m({});
    lowerMtu(c, 1440);
    assert.deepEqual([a.parameters.MTU, b.parameters.MTU, c.parameters.MTU], ['1400', '1450', '1440']);
  });

  it('compareIps orders by bytes, IPv4 and IPv6 alike', () => {
    const table: Array<[string, string, number]> = [
      ['127.0.0.1', '127.0.0.2', -1],
      ['10.0.0.10', '10.0.0.9', 1],
      ['192.168.1.1', '192.168.1.1', 0],
      ['fd00::1', 'fd00::2', -1],
      ['fd00::1:0', 'fd00::ffff', 1],
      ['::ffff:10.0.0.1', '10.0.0.1', 0],
    ];
    for (const [a, b, want] of table) assert.equal(Math.sign(compareIps(a, b)), want, `${a} vs ${b}`);
  });

  it('unix and inode next hops are local, anything else remote', () => {
    assert.deepEqual(['unix:///x.sock', 'inode://4/5', 'tcp://10.0.0.1:5001', undefined].map(isLocalUrl), [true, true, false, false]);
  });
});
