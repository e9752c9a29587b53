import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SPIFFE_ID_LENGTH, parseSpiffeId, parseTrustDomainKey } from './spiffe-id.js';
import { trustDomainOf } from './svid.js';

test('spiffe id: valid IDs parse into trust domain and path', () => {
  const ok: Array<[string, string, string]> = [
    ['spiffe://example.org', 'example.org', ''],
    ['spiffe://example.org/ns/default/sa/nsc', 'example.org', '/ns/default/sa/nsc'],
    ['spiffe://k8s.nsm/ns/nsm-system/pod/nsmgr-x_1.2', 'k8s.nsm', '/ns/nsm-system/pod/nsmgr-x_1.2'],
    ['spiffe://a_b-c.d/UPPER/Case', 'a_b-c.d', '/UPPER/Case'],
  ];
  for (const [id, td, path] of ok) {
    assert.deepEqual(parseSpiffeId(id), { id, trustDomain: td, path }, id);
    assert.equal(trustDomainOf(id), td, id);
  }
});

test('spiffe id: malformed IDs are refused naming the field and value', () => {
  const bad = [
    '',
    'http://example.org/x',
    'spiffe:/example.org/x',
    'spiffe://',
    'spiffe:///x',
    'spiffe://Example.org/x',
    'spiffe://example.org:8080/x',
    'spiffe://user@example.org/x',
    'spiffe://example.org/',
    'spiffe://example.org//x',
    'spiffe://example.org/x/',
    'spiffe://example.org/a/../b',
    'spiffe://example.org/./b',
    'spiffe://example.org/x?y=1',
    'spiffe://example.org/x#f',
    'spiffe://example.org/x%20y',
    `spiffe://example.org/${'a'.repeat(MAX_SPIFFE_ID_LENGTH)}`,
    `spiffe://${'a'.repeat(256)}/x`,
  ];
  for (const id of bad) {
    assert.throws(() => parseSpiffeId(id, 'peer.uri_san'), (err: Error & { field?: string; value?: unknown }) => err.name === 'InvalidArgumentError' && err.field === 'peer.uri_san' && err.value === id, id);
  }
});

test('spiffe id: bundle map keys may be the trust domain name or its SPIFFE ID', () => {
  assert.equal(parseTrustDomainKey('example.org', 'k'), 'example.org');
  assert.equal(parseTrustDomainKey('spiffe://example.org', 'k'), 'example.org');
  assert.throws(() => parseTrustDomainKey('spiffe://Example.org', 'federated_bundles'), { name: 'InvalidArgumentError' });
  assert.throws(() => parseTrustDomainKey('', 'federated_bundles'), { name: 'InvalidArgumentError' });
});
