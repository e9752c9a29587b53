import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { NetworkService, NetworkServiceEndpoint } from '../api/gen/registry.js';
import {
  CR_API_VERSION,
  isValidObjectName,
  nseFromResource,
  nseFromSpec,
  nseToResource,
  nseToSpec,
  nsFromResource,
  nsFromSpec,
  nsToResource,
  nsToSpec,
  parseCustomResources,
  stringifyCustomResources,
  timestampFromSpec,
  timestampToSpec,
} from './cr.js';

const repoRoot = new URL('../../../', import.meta.url);

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

const fullNs: NetworkService = {
  name: 'secure-intranet',
  payload: 'IP',
  matches: [
    {
      sourceSelector: { app: 'firewall' },
      routes: [{ destinationSelector: { app: 'vpn-gateway' }, weight: 3 }],
      fallthrough: true,
      metadata: { labels: { tier: 'one' } },
    },
    { sourceSelector: {}, routes: [{ destinationSelector: { app: 'firewall' }, weight: 0 }], fallthrough: false, metadata: undefined },
  ],
  pathIds: ['a', 'b'],
};

const fullNse: NetworkServiceEndpoint = {
  name: 'nse-kernel-6c7d9-x2bq4',
  networkServiceNames: ['dataplane-interrupt', 'other'],
  networkServiceLabels: { 'dataplane-interrupt': { labels: { app: 'nse-kernel' } }, other: { labels: {} } },
  url: 'tcp://10.244.1.7:5003',
  expirationTime: new Date(Date.UTC(2025, 0, 2, 3, 4, 5, 678)),
  initialRegistrationTime: new Date(Date.UTC(2025, 0, 2, 3, 3, 5, 0)),
  pathIds: ['p1'],
};

describe('custom resources, lenient (objects read back from the API server)', () => {
  it('converts the example netsvc.yaml (spec.payload only; name from metadata.name)', () => {
    const text = readFileSync(new URL('deployments/examples/heal/dataplane-interrupt/netsvc.yaml', repoRoot), 'utf8');
    const docs = parseAllDocuments(text).map((d) => d.toJSON() as unknown).filter((d) => d !== null);
    assert.equal(docs.length, 1);
    const ns = nsFromResource(docs[0]);
    assert.deepEqual(ns, { name: 'dataplane-interrupt', payload: 'ETHERNET', matches: [], pathIds: [] });
  });

  it('writes upstream snake_case spec field names and leaves empty fields out', () => {
    assert.deepEqual(nsToSpec(fullNs), {
      name: 'secure-intranet',
      payload: 'IP',
      matches: [
        {
          source_selector: { app: 'firewall' },
          routes: [{ destination_selector: { app: 'vpn-gateway' }, weight: 3 }],
          fallthrough: true,
          metadata: { labels: { tier: 'one' } },
        },
        { routes: [{ destination_selector: { app: 'firewall' } }] },
      ],
      path_ids: ['a', 'b'],
    });
    const spec = nseToSpec(fullNse);
    assert.deepEqual(Object.keys(spec), ['name', 'network_service_names', 'network_service_labels', 'url', 'expiration_time', 'initial_registration_time', 'path_ids']);
    assert.deepEqual(spec.expiration_time, { seconds: Date.UTC(2025, 0, 2, 3, 4, 5) / 1000, nanos: 678_000_000 });
    assert.deepEqual(spec.initial_registration_time, { seconds: Date.UTC(2025, 0, 2, 3, 3, 5) / 1000 });
    assert.deepEqual(spec.network_service_labels, { 'dataplane-interrupt': { labels: { app: 'nse-kernel' } }, other: {} });
    assert.deepEqual(nsToSpec({ name: '', payload: '', matches: [], pathIds: [] }), {});
  });

  it('round-trips NetworkService and NetworkServiceEndpoint through a CR (also through JSON text)', () => {
    const nsCr = nsToResource(fullNs, 'nsm-system', '7');
    assert.equal(nsCr.apiVersion, 'networkservicemesh.io/v1');
    assert.equal(nsCr.kind, 'NetworkService');
    assert.deepEqual(nsCr.metadata, { name: 'secure-intranet', namespace: 'nsm-system', resourceVersion: '7' });
    assert.deepEqual(nsFromResource(JSON.parse(JSON.stringify(nsCr))), NetworkService.fromPartial(fullNs));
    const nseCr = nseToResource(fullNse, 'default');
    assert.deepEqual(nseFromResource(JSON.parse(JSON.stringify(nseCr))), NetworkServiceEndpoint.fromPartial(fullNse));
  });

  it('reads an upstream-written NSE CR (Go encoding/json) and tolerates camelCase names', () => {
    const upstream = {
      apiVersion: 'networkservicemesh.io/v1',
      kind: 'NetworkServiceEndpoint',
      metadata: { name: 'nse-1', namespace: 'nsm-system' },
      spec: {
        network_service_names: ['icmp-responder'],
        network_service_labels: { 'icmp-responder': { labels: { nodeName: 'kind-worker' } } },
        url: 'tcp://10.0.0.1:5003',
        expiration_time: { seconds: 1700000000, nanos: 500000000 },
        unknown_future_field: 1,
      },
    };
    const nse = nseFromResource(upstream);
    assert.equal(nse.name, 'nse-1');
    assert.deepEqual(nse.networkServiceNames, ['icmp-responder']);
    assert.deepEqual(nse.networkServiceLabels, { 'icmp-responder': { labels: { nodeName: 'kind-worker' } } });
    assert.equal(nse.expirationTime?.getTime(), 1700000000_500);
    assert.equal(nse.initialRegistrationTime, undefined);
    const camel = nseFromResource({ ...upstream, spec: { networkServiceNames: ['x'], expirationTime: '2024-01-01T00:00:00Z' } });
    assert.deepEqual(camel.networkServiceNames, ['x']);
    assert.equal(camel.expirationTime?.toISOString(), '2024-01-01T00:00:00.000Z');
  });

  it('spec.name wins over metadata.name', () => {
    const ns = nsFromResource({ apiVersion: 'networkservicemesh.io/v1', kind: 'NetworkService', metadata: { name: 'meta' }, spec: { name: 'spec-name' } });
    assert.equal(ns.name, 'spec-name');
  });

  it('rejects wrong types naming the field', () => {
    const base = { apiVersion: 'networkservicemesh.io/v1', kind: 'NetworkService', metadata: { name: 'x' } };
    const bad: Array<[unknown, string]> = [
      [{ ...base, spec: { payload: 5 } }, 'spec.payload'],
      [{ ...base, spec: { matches: {} } }, 'spec.matches'],
      [{ ...base, spec: { matches: [{ source_selector: { a: 1 } }] } }, 'spec.matches[0].source_selector.a'],
      [{ ...base, spec: { matches: [{ routes: [{ weight: -1 }] }] } }, 'spec.matches[0].routes[0].weight'],
      [{ ...base, kind: 'NetworkServiceEndpoint' }, 'kind'],
      [{ ...base, metadata: {} }, 'metadata.name'],
    ];
    for (const [cr, fieldName] of bad) {
      assert.throws(() => nsFromResource(cr), (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === fieldName, fieldName);
    }
    assert.throws(
      () => nseFromResource({ apiVersion: 'networkservicemesh.io/v1', kind: 'NetworkServiceEndpoint', metadata: { name: 'n' }, spec: { expiration_time: { seconds: 1, nanos: 2e9 } } }),
      (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === 'spec.expiration_time.nanos',
    );
  });

  it('refuses names that are not Kubernetes object names', () => {
    assert.equal(isValidObjectName('dataplane-interrupt'), true);
    assert.equal(isValidObjectName('a.b-c'), true);
    for (const bad of ['', 'Upper', 'under_score', '-lead', 'x'.repeat(254)]) assert.equal(isValidObjectName(bad), false, bad);
    assert.throws(() => nsToResource({ ...fullNs, name: 'Bad_Name' }), { name: 'InvalidArgumentError' });
  });

  it('timestamps: {seconds, nanos} both ways, negative and zero', () => {
    assert.deepEqual(timestampToSpec(new Date(0)), {});
    assert.deepEqual(timestampToSpec(new Date(-1500)), { seconds: -2, nanos: 500_000_000 });
    assert.equal(timestampFromSpec({ seconds: -2, nanos: 500_000_000 }, 't')?.getTime(), -1500);
    assert.equal(timestampFromSpec({ seconds: '12' }, 't')?.getTime(), 12_000);
    assert.equal(timestampFromSpec(undefined, 't'), undefined);
  });
});

describe('custom resources: one reader, two modes', () => {
  const loose = {
    metadata: { name: 'svc' },
    spec: { payload: 'IP', pathIds: ['p'], future_field: true, matches: [{ sourceSelector: { a: 'b' } }] },
  };

  it('lenient tolerates a missing apiVersion/kind, camelCase names and unknown fields', () => {
    assert.deepEqual(nsFromResource(loose), NetworkService.fromPartial({ name: 'svc', payload: 'IP', pathIds: ['p'], matches: [{ sourceSelector: { a: 'b' } }] }));
  });

  it('strict refuses the same object, naming the field and its value', () => {
    const fieldOf = (doc: unknown) => {
      try {
        nsFromResource(doc, 'strict');
      } catch (err) {
        assert.equal((err as Error).name, 'InvalidArgumentError');
        return [(err as { field: string }).field, (err as { value: unknown }).value];
      }
      return assert.fail('expected an error');
    };
    assert.deepEqual(fieldOf(loose), ['apiVersion', undefined]);
    const typed = { apiVersion: CR_API_VERSION, kind: 'NetworkService', ...loose };
    assert.deepEqual(fieldOf(typed), ['spec.pathIds', ['p']]);
    assert.deepEqual(fieldOf({ ...typed, spec: { payload: 'IP', future_field: true } }), ['spec.future_field', true]);
  });

  it('both modes reject a wrong type with the same field name', () => {
    const doc = { apiVersion: CR_API_VERSION, kind: 'NetworkServiceEndpoint', metadata: { name: 'e' }, spec: { url: 7 } };
    for (const mode of ['strict', 'lenient'] as const) {
      assert.throws(() => nseFromResource(doc, mode), (err: Error & { field?: string; value?: unknown }) => err.field === 'spec.url' && err.value === 7, mode);
    }
    assert.throws(() => parseCustomResources(JSON.stringify(doc)), (err: Error & { field?: string }) => err.field === 'document 1: spec.url');
  });

  it('a resource of the other kind is refused in both modes', () => {
    const nse = nseToResource(NetworkServiceEndpoint.fromPartial({ name: 'e' }));
    for (const mode of ['strict', 'lenient'] as const) {
      assert.throws(() => nsFromResource(nse, mode), (err: Error & { field?: string }) => err.field === 'kind', mode);
    }
  });
});
