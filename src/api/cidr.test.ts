import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  addresses,
  canonicalCidr,
  compareCidr,
  compareIp,
  contains,
  containsCidr,
  formatIp,
  hostCidr,
  lastAddress,
  nthAddress,
  overlaps,
  parseAddressOrCidr,
  parseCidr,
  parseIp,
  prefixToMask,
  size,
  tryParseCidr,
  tryParseIp,
} from './cidr.js';

describe('cidr: addresses', () => {
  const valid: Array<[string, string]> = [
    ['172.16.1.100', '172.16.1.100'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['::', '::'],
    ['::1', '::1'],
    ['FD00::1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0000:0000:0000:0002:0001', '2001:db8::2:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['::1.2.3.4', '::102:304'],
    ['2004::3', '2004::3'],
  ];
  for (const [input, want] of valid) {
    it(`parses and formats ${input}`, () => assert.equal(formatIp(parseIp(input)), want));
  }
  const invalid = ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-1', 'a.b.c.d', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9',
    '12345::', 'fe80::1%eth0', '::ffff:1.2.3.256', '1.2.3.4 ', 'g::1', ':1::'];
  for (const input of invalid) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.equal(tryParseIp(input), undefined);
      assert.throws(() => parseIp(input, 'some_field'), (e: Error & { field?: string; value?: unknown }) =>
        e.name === 'InvalidArgumentError' && e.field === 'some_field' && e.value === input);
    });
  }
});

describe('cidr: networks', () => {
  const table: Array<{ in: string; canon: string; size: bigint; last: string }> = [
    { in: '172.16.1.100/31', canon: '172.16.1.100/31', size: 2n, last: '172.16.1.101' },
    { in: '10.0.0.5/24', canon: '10.0.0.0/24', size: 256n, last: '10.0.0.255' },
    { in: '0.0.0.0/0', canon: '0.0.0.0/0', size: 1n << 32n, last: '255.255.255.255' },
    { in: '192.168.1.1/32', canon: '192.168.1.1/32', size: 1n, last: '192.168.1.1' },
    { in: 'FD00::1/120', canon: 'fd00::/120', size: 256n, last: 'fd00::ff' },
    { in: '2001:db8::/32', canon: '2001:db8::/32', size: 1n << 96n, last: '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff' },
  ];
  for (const t of table) {
    it(`${t.in}`, () => {
      const c = parseCidr(t.in);
      assert.equal(canonicalCidr(t.in), t.canon);
      assert.equal(size(c), t.size);
      assert.equal(formatIp(lastAddress(c), c.family), t.last);
    });
  }
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/08', 'fd00::/129', '/24', '10.0.0.0/24/1', 'x/8', '10.0.0.0/']) {
    it(`rejects ${bad} naming the field`, () => {
      assert.equal(tryParseCidr(bad), undefined);
      assert.throws(() => parseCidr(bad, 'NSM_CIDR_PREFIX'), (e: Error & { field?: string; value?: unknown }) =>
        e.name === 'InvalidArgumentError' && e.field === 'NSM_CIDR_PREFIX' && e.value === bad && e.message.includes(bad));
    });
  }
  it('contains', () => {
    const rows: Array<[string, string, boolean]> = [
      ['172.16.1.100/31', '172.16.1.100', true],
      ['172.16.1.100/31', '172.16.1.101', true],
      ['172.16.1.100/31', '172.16.1.102', false],
      ['172.16.1.100/31', '172.16.1.101/32', true],
      ['10.0.0.0/8', 'fd00::1', false],
      ['fd00::/120', 'fd00::ff', true],
      ['fd00::/120', 'fd00::100', false],
      ['0.0.0.0/0', '8.8.8.8', true],
    ];
    for (const [n, ip, want] of rows) assert.equal(contains(n, ip), want, `${n} ∋ ${ip}`);
  });
  it('containsCidr / overlaps', () => {
    assert.equal(containsCidr('10.0.0.0/8', '10.1.0.0/16'), true);
    assert.equal(containsCidr('10.1.0.0/16', '10.0.0.0/8'), false);
    assert.equal(overlaps('10.1.0.0/16', '10.0.0.0/8'), true);
    assert.equal(overlaps('10.1.0.0/16', '10.2.0.0/16'), false);
    assert.equal(containsCidr('fd00::/64', '10.0.0.0/8'), false);
  });
  it('iterates addresses lowest first', () => {
    assert.deepEqual([...addresses('172.16.1.100/30')].map((a) => formatIp(a)), ['172.16.1.100', '172.16.1.101', '172.16.1.102', '172.16.1.103']);
    const it6 = addresses('fd00::/64');
    assert.equal(formatIp(it6.next().value as never), 'fd00::');
    assert.equal(formatIp(it6.next().value as never), 'fd00::1');
  });
  it('compares', () => {
    const ips = ['fd00::1', '10.0.0.2', '10.0.0.10', '9.255.255.255', '::1'];
    assert.deepEqual([...ips].sort(compareIp), ['9.255.255.255', '10.0.0.2', '10.0.0.10', '::1', 'fd00::1']);
    const nets = ['10.0.0.0/16', 'fd00::/8', '10.0.0.0/8', '9.0.0.0/8'];
    assert.deepEqual([...nets].sort(compareCidr), ['9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16', 'fd00::/8']);
  });
  it('host cidr, nth address, masks, address-or-cidr', () => {
    assert.equal(hostCidr('172.16.1.100'), '172.16.1.100/32');
    assert.equal(hostCidr('fd00::1'), 'fd00::1/128');
    assert.equal(formatIp(nthAddress('10.0.0.0/24', 5)), '10.0.0.5');
    assert.throws(() => nthAddress('10.0.0.0/31', 2), RangeError);
    assert.equal(prefixToMask(4, 24), '255.255.255.0');
    assert.equal(prefixToMask(6, 64), 'ffff:ffff:ffff:ffff::');
    assert.equal(parseAddressOrCidr('10.0.0.1').prefix, 32);
    assert.equal(parseAddressOrCidr('10.0.0.1/24').prefix, 24);
    assert.throws(() => parseAddressOrCidr('nope', 'excluded_prefixes'), { name: 'InvalidArgumentError' });
  });
});
