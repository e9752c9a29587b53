import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nsUrlMechanism, parseNsUrl, parseNsUrlList, NSURL_FIELD } from './nsurl.js';

describe('nsurl', () => {
  const valid: Array<{ in: string; want: Record<string, unknown> }> = [
    {
      in: 'kernel://dataplane-interrupt/nsm-1',
      want: { mechanism: 'KERNEL', explicitMechanism: true, networkService: 'dataplane-interrupt', qualifiedNetworkService: 'dataplane-interrupt', interfaceName: 'nsm-1', labels: {} },
    },
    {
      in: 'kernel://icmp-responder@my.cluster2/nsm-1?app=foo&color=red',
      want: { mechanism: 'KERNEL', explicitMechanism: true, networkService: 'icmp-responder', domain: 'my.cluster2', qualifiedNetworkService: 'icmp-responder@my.cluster2', interfaceName: 'nsm-1', labels: { app: 'foo', color: 'red' } },
    },
    { in: 'vfio://sriov-svc', want: { mechanism: 'VFIO', explicitMechanism: true, networkService: 'sriov-svc', qualifiedNetworkService: 'sriov-svc', labels: {} } },
    { in: 'KERNEL://svc/', want: { mechanism: 'KERNEL', explicitMechanism: true, networkService: 'svc', qualifiedNetworkService: 'svc', labels: {} } },
    { in: 'svc', want: { mechanism: 'KERNEL', explicitMechanism: false, networkService: 'svc', qualifiedNetworkService: 'svc', labels: {} } },
    { in: 'svc/eth9', want: { mechanism: 'KERNEL', explicitMechanism: false, networkService: 'svc', qualifiedNetworkService: 'svc', interfaceName: 'eth9', labels: {} } },
    { in: 'kernel://svc/a/b/nsm-2', want: { mechanism: 'KERNEL', explicitMechanism: true, networkService: 'svc', qualifiedNetworkService: 'svc', interfaceName: 'nsm-2', labels: {} } },
    { in: 'kernel://svc/nsm-1?a=1&a=2&b=&c', want: { mechanism: 'KERNEL', explicitMechanism: true, networkService: 'svc', qualifiedNetworkService: 'svc', interfaceName: 'nsm-1', labels: { a: '1,2', b: '', c: '' } } },
    { in: 'kernel://svc/nsm-1?k=a%20b', want: { mechanism: 'KERNEL', explicitMechanism: true, networkService: 'svc', qualifiedNetworkService: 'svc', interfaceName: 'nsm-1', labels: { k: 'a b' } } },
    { in: '  kernel://svc/abcdefghijklmno  ', want: { mechanism: 'KERNEL', explicitMechanism: true, networkService: 'svc', qualifiedNetworkService: 'svc', interfaceName: 'abcdefghijklmno', labels: {} } },
    { in: 'memif://svc', want: { mechanism: 'MEMIF', explicitMechanism: true, networkService: 'svc', qualifiedNetworkService: 'svc', labels: {} } },
  ];
  for (const t of valid) {
    it(`parses ${t.in}`, () => assert.deepEqual({ ...parseNsUrl(t.in), labels: { ...parseNsUrl(t.in).labels } }, t.want));
  }

  const invalid: Array<[string, RegExp]> = [
    ['', /empty/],
    ['kernel://', /missing/],
    ['kernel:///nsm-1', /missing/],
    ['kernel://@dom/nsm-1', /missing/],
    ['kernel://svc/abcdefghijklmnop', /longer than 15/],
    ['kernel://svc/nsm 1', /invalid characters/],
    ['kernel://svc/nsm:1', /invalid characters/],
    ['kernel://svc/..', /invalid characters/],
    ['tap://svc/nsm-1', /unknown mechanism scheme "tap"/],
    ['kernel:/svc/nsm-1', /malformed scheme/],
    ['kernel://svc@/nsm-1', /invalid domain/],
    ['kernel://s%zz/nsm-1', /percent-encoding/],
    ['kernel://svc/nsm-1?=x', /empty key/],
    ['kernel://svc/nsm-1#frag', /fragments/],
    ['kernel://sv c/nsm-1', /invalid network service name/],
  ];
  for (const [input, reason] of invalid) {
    it(`rejects ${JSON.stringify(input)}`, () => {
      assert.throws(
        () => parseNsUrl(input),
        (e: Error & { field?: string; value?: unknown }) =>
          e.name === 'InvalidArgumentError' && e.field === NSURL_FIELD && e.value === input && reason.test(e.message) && e.message.includes(NSURL_FIELD),
      );
    });
  }

  it('parses a list and requires one entry', () => {
    const list = parseNsUrlList('kernel://a/nsm-1, kernel://b/nsm-2');
    assert.deepEqual(list.map((u) => [u.networkService, u.interfaceName]), [['a', 'nsm-1'], ['b', 'nsm-2']]);
    assert.throws(() => parseNsUrlList(' , '), { name: 'InvalidArgumentError' });
    assert.throws(() => parseNsUrlList('kernel://a/nsm-1,tap://b'), (e: Error & { value?: unknown }) => e.value === 'tap://b');
  });

  it('builds the NSC mechanism preference', () => {
    assert.deepEqual(nsUrlMechanism(parseNsUrl('kernel://svc/nsm-1')), { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1' } });
    assert.deepEqual(nsUrlMechanism(parseNsUrl('vfio://svc')), { cls: 'LOCAL', type: 'VFIO', parameters: {} });
  });
});
