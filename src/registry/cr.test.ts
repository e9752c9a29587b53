import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NetworkService, NetworkServiceEndpoint } from '../api/gen/registry.js';
import {
  CR_API_VERSION,
  nsFromSpec,
  nsToSpec,
  nseFromSpec,
  nseToSpec,
  parseCustomResources,
  stringifyCustomResources,
  timestampFromSpec,
} from './cr.js';

const SEED_NETSVC = `---
apiVersion: networkservicemesh.io/v1
kind: NetworkService
metadata:
  name: dataplane-interrupt
spec:
  payload: ETHERNET
`;

const NSE_YAML = `
apiVersion: networkservicemesh.io/v1
kind: NetworkServiceEndpoint
metadata:
  name: nse-kernel-abc
  namespace: nsm-system
spec:
  network_service_names: [dataplane-interrupt]
  network_service_labels:
    dataplane-interrupt:
      labels: { app: nse, nodeName: node-1 }
  url: tcp://10.0.0.1:5001
  expiration_time: { seconds: 1700000060, nanos: 500000000 }
  initial_registration_time: { seconds: 1700000000 }
`;

/** Asserts an InvalidArgumentError whose field matches. */
function rejects(text: string, field: RegExp) {
  assert.throws(() => parseCustomResources(text), (err: unknown) => {
    assert.equal((err as Error).name, 'InvalidArgumentError');
    assert.match((err as { field: string }).field, field);
    return true;
  });
}

describe('custom resources', () => {
  it('parses the seed netsvc.yaml as is (name from metadata.name)', () => {
    const crs = parseCustomResources(SEED_NETSVC);
    assert.equal(crs.length, 1);
    assert.equal(crs[0].kind, 'NetworkService');
    assert.deepEqual(crs[0].item, NetworkService.fromPartial({ name: 'dataplane-interrupt', payload: 'ETHERNET' }));
    assert.equal(crs[0].metadata.name, 'dataplane-interrupt');
  });

  it('parses an NSE with labels and timestamps, and several documents', () => {
    const crs = parseCustomResources(`${SEED_NETSVC}---\n${NSE_YAML}---\n`);
    assert.equal(crs.length, 2);
    const nse = crs[1];
    assert.equal(nse.kind, 'NetworkServiceEndpoint');
    assert.equal(nse.metadata.namespace, 'nsm-system');
    assert.deepEqual(
      nse.item,
      NetworkServiceEndpoint.fromPartial({
        name: 'nse-kernel-abc',
        networkServiceNames: ['dataplane-interrupt'],
        networkServiceLabels: { 'dataplane-interrupt': { labels: { app: 'nse', nodeName: 'node-1' } } },
        url: 'tcp://10.0.0.1:5001',
        expirationTime: new Date(1_700_000_060_500),
        initialRegistrationTime: new Date(1_700_000_000_000),
      }),
    );
  });

  it('prefers spec.name over metadata.name', () => {
    const [cr] = parseCustomResources(`apiVersion: ${CR_API_VERSION}\nkind: NetworkService\nmetadata: {name: a}\nspec: {name: b}\n`);
    assert.equal(cr.item.name, 'b');
  });

  it('round-trips NS matches and NSE specs through snake_case', () => {
    const ns = NetworkService.fromPartial({
      name: 'svc',
      payload: 'IP',
      matches: [
        {
          sourceSelector: { app: 'client' },
          routes: [{ destinationSelector: { app: 'server' }, weight: 3 }],
          fallthrough: true,
          metadata: { labels: { k: 'v' } },
        },
      ],
      pathIds: ['p1'],
    });
    const spec = nsToSpec(ns);
    assert.deepEqual(spec, {
      name: 'svc',
      payload: 'IP',
      matches: [{ source_selector: { app: 'client' }, routes: [{ destination_selector: { app: 'server' }, weight: 3 }], fallthrough: true, metadata: { labels: { k: 'v' } } }],
      path_ids: ['p1'],
    });
    assert.deepEqual(nsFromSpec(spec), ns);

    const nse = NetworkServiceEndpoint.fromPartial({
      name: 'e',
      networkServiceNames: ['svc'],
      networkServiceLabels: { svc: { labels: { a: 'b' } } },
      url: 'unix:///x.sock',
      expirationTime: new Date(1_700_000_000_123),
    });
    const nseSpec = nseToSpec(nse);
    assert.deepEqual(nseSpec.expiration_time, { seconds: 1_700_000_000, nanos: 123_000_000 });
    assert.deepEqual(nseFromSpec(nseSpec), nse);
  });

  it('writes YAML that parses back', () => {
    const nse = NetworkServiceEndpoint.fromPartial({ name: 'e', networkServiceNames: ['svc'], url: 'tcp://1.2.3.4:5' });
    const text = stringifyCustomResources([
      { kind: 'NetworkService', item: NetworkService.fromPartial({ name: 'svc', payload: 'ETHERNET' }) },
      { kind: 'NetworkServiceEndpoint', item: nse, namespace: 'ns1' },
    ]);
    const back = parseCustomResources(text);
    assert.deepEqual(back.map((c) => c.item.name), ['svc', 'e']);
    assert.deepEqual(back[1].item, nse);
  });

  it('skips empty documents', () => {
    assert.deepEqual(parseCustomResources(''), []);
    assert.equal(parseCustomResources(`---\n---\n${SEED_NETSVC}\n---\n`).length, 1);
  });

  it('accepts an RFC 3339 timestamp and rejects bad nanos', () => {
    assert.equal(timestampFromSpec('2023-11-14T22:13:20Z', 'f')?.getTime(), 1_700_000_000_000);
    assert.throws(() => timestampFromSpec({ seconds: 1, nanos: 2e9 }, 'f'), { name: 'InvalidArgumentError' });
  });

  describe('bad documents name the document and the field', () => {
    it('wrong apiVersion', () => rejects(SEED_NETSVC.replace('networkservicemesh.io/v1', 'networkservicemesh.io/v2'), /^document 1: apiVersion$/));
    it('wrong kind', () => rejects(`${SEED_NETSVC}---\n${SEED_NETSVC.replace('kind: NetworkService', 'kind: Service')}`, /^document 2: kind$/));
    it('unknown spec field', () => rejects(SEED_NETSVC.replace('payload:', 'paylod:'), /^document 1: spec\.paylod$/));
    it('camelCase spec field', () => {
      try {
        parseCustomResources(NSE_YAML.replace('network_service_names', 'networkServiceNames'));
        assert.fail('expected an error');
      } catch (err) {
        assert.equal((err as Error).name, 'InvalidArgumentError');
        assert.match((err as Error).message, /network_service_names/);
      }
    });
    it('wrong type', () => rejects(NSE_YAML.replace('[dataplane-interrupt]', 'dataplane-interrupt'), /^document 1: spec\.network_service_names$/));
    it('non-string label', () => rejects(NSE_YAML.replace('app: nse', 'app: 1'), /spec\.network_service_labels\.dataplane-interrupt\.labels\.app$/));
    it('bad route weight', () =>
      rejects(SEED_NETSVC.replace('payload: ETHERNET', 'matches: [{routes: [{weight: -1}]}]'), /^document 1: spec\.matches\[0\]\.routes\[0\]\.weight$/));
    it('no name', () => rejects(SEED_NETSVC.replace('  name: dataplane-interrupt\n', '  namespace: x\n'), /^document 1: metadata\.name$/));
    it('unknown top-level field', () => rejects(`${SEED_NETSVC}extra: 1\n`, /^document 1\.extra$/));
    it('not a mapping', () => rejects('- a\n- b\n', /^document 1$/));
    it('invalid YAML', () => rejects(`${SEED_NETSVC}---\nkind: [\n`, /^document 2$/));
  });
});
