import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as der from './der.js';

test('der: integers, OIDs, named bits and times encode as DER requires', () => {
  const hex = (b: Buffer) => b.toString('hex');
  const cases: Array<[string, Buffer, string]> = [
    ['zero', der.smallInteger(0), '020100'],
    ['127', der.smallInteger(127), '02017f'],
    ['128 gets a 0x00 before the high bit', der.smallInteger(128), '02020080'],
    ['leading zeros dropped', der.unsignedInteger(Buffer.from([0, 0, 1, 2])), '02020102'],
    ['ecdsa-with-SHA256', der.oid('1.2.840.10045.4.3.2'), '06082a8648ce3d040302'],
    ['keyUsage digitalSignature', der.namedBits([0]), '03020780'],
    ['keyUsage dS+kE+kA', der.namedBits([0, 2, 4]), '030203a8'],
    ['keyUsage keyCertSign+cRLSign', der.namedBits([5, 6]), '03020106'],
    ['UTCTime', der.time(new Date('2026-12-02T15:04:05Z')), '170d3236313230323135303430355a'],
    ['GeneralizedTime from 2050', der.time(new Date('2050-01-01T00:00:00Z')), '180f32303530303130313030303030305a'],
    ['long length', der.octetString(Buffer.alloc(200)).subarray(0, 3), '0481c8'],
  ];
  for (const [what, got, want] of cases) assert.equal(hex(got), want, what);
});

test('der: the reader round-trips what the writer wrote and refuses broken input', () => {
  const seq = der.sequence(der.oid('2.5.29.17'), der.boolean(true), der.octetString(Buffer.alloc(300, 1)));
  const top = der.readTlv(seq);
  assert.equal(top.tag, der.TAG.SEQUENCE);
  const [o, b, s] = der.children(top.content);
  assert.equal(der.decodeOid(o!.content), '2.5.29.17');
  assert.equal(b!.content[0], 0xff);
  assert.equal(s!.content.length, 300);
  assert.deepEqual(der.decodeNamedBits(der.readTlv(der.namedBits([0, 2, 4])).content), [0, 2, 4]);
  for (const d of [new Date('2026-12-02T15:04:05Z'), new Date('1999-01-01T00:00:00Z'), new Date('2051-06-30T23:59:59Z')]) {
    assert.equal(der.decodeTime(der.readTlv(der.time(d))).getTime(), d.getTime());
  }
  const bad: Array<[string, Buffer]> = [
    ['truncated', seq.subarray(0, seq.length - 1)],
    ['one byte', Buffer.from([0x30])],
    ['indefinite length', Buffer.from([0x30, 0x80, 0, 0])],
    ['non-minimal length', Buffer.from([0x04, 0x81, 0x01, 0x00])],
    ['5-byte length', Buffer.from([0x04, 0x85, 1, 0, 0, 0, 0])],
    ['multi-byte tag', Buffer.from([0x1f, 0x01, 0x00])],
  ];
  for (const [what, buf] of bad) assert.throws(() => der.children(buf, 'x'), { name: 'InvalidArgumentError' }, what);
  assert.throws(() => der.decodeTime(der.readTlv(der.utf8String('yesterday'))), { name: 'InvalidArgumentError' });
});
