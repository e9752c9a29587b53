import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkService, NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { matchNetworkService, matchNetworkServiceEndpoint } from './index.js';

const nse = NetworkServiceEndpoint.fromPartial({
  name: 'nse-kernel-abc',
  networkServiceNames: ['dataplane-interrupt', 'other'],
  networkServiceLabels: { 'dataplane-interrupt': { labels: { app: 'icmp', nodeName: 'n1' } } },
  url: 'tcp://10.0.0.1:5001',
});

describe('matchutils', () => {
  it('nse: empty template matches everything', () => {
    assert.equal(matchNetworkServiceEndpoint(undefined, nse), true);
    assert.equal(matchNetworkServiceEndpoint(NetworkServiceEndpoint.fromPartial({}), nse), true);
  });

  const cases: Array<[string, Parameters<typeof NetworkServiceEndpoint.fromPartial>[0], boolean]> = [
    ['name substring', { name: 'kernel' }, true],
    ['name mismatch', { name: 'vpp' }, false],
    ['service subset', { networkServiceNames: ['other'] }, true],
    ['all services present', { networkServiceNames: ['other', 'dataplane-interrupt'] }, true],
    ['missing service', { networkServiceNames: ['other', 'missing'] }, false],
    ['label subset', { networkServiceLabels: { 'dataplane-interrupt': { labels: { app: 'icmp' } } } }, true],
    ['label value differs', { networkServiceLabels: { 'dataplane-interrupt': { labels: { app: 'x' } } } }, false],
    ['labels for unknown service', { networkServiceLabels: { other: { labels: {} } } }, false],
    ['url substring', { url: '10.0.0.1' }, true],
    ['url mismatch', { url: 'unix://' }, false],
  ];
  for (const [what, tmpl, want] of cases) {
    it(`nse: ${what}`, () => {
      assert.equal(matchNetworkServiceEndpoint(NetworkServiceEndpoint.fromPartial(tmpl), nse), want);
    });
  }

  it('ns: name substring and payload equality', () => {
    const ns = NetworkService.fromPartial({ name: 'dataplane-interrupt', payload: 'ETHERNET' });
    assert.equal(matchNetworkService(NetworkService.fromPartial({}), ns), true);
    assert.equal(matchNetworkService(NetworkService.fromPartial({ name: 'interrupt' }), ns), true);
    assert.equal(matchNetworkService(NetworkService.fromPartial({ name: 'nope' }), ns), false);
    assert.equal(matchNetworkService(NetworkService.fromPartial({ payload: 'ETHERNET' }), ns), true);
    assert.equal(matchNetworkService(NetworkService.fromPartial({ payload: 'IP' }), ns), false);
  });

  it('ns: matches compared only when the template has some', () => {
    const ns = NetworkService.fromPartial({ name: 'a', matches: [{ sourceSelector: { app: 'x' } }] });
    assert.equal(matchNetworkService(NetworkService.fromPartial({ name: 'a' }), ns), true);
    assert.equal(matchNetworkService(NetworkService.fromPartial({ matches: [{ sourceSelector: { app: 'x' } }] }), ns), true);
    assert.equal(matchNetworkService(NetworkService.fromPartial({ matches: [{ sourceSelector: { app: 'y' } }] }), ns), false);
  });
});
