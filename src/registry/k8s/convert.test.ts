import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import type { NetworkService, NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { NetworkServiceEndpoint as NseCodec, NetworkService as NsCodec } from '../../api/gen/registry.js';
import {
  isValidObjectName,
  nseFromResource,
  nseToResource,
  nseToSpec,
  nsFromResource,
  nsToResource,
  nsToSpec,
  timestampFromJson,
  timestampToJson,
} from './convert.js';

const repoRoot = new URL('../../../../', import.meta.url);

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

describe('k8s CR converters', () => {
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
    assert.deepEqual(nsFromResource(JSON.parse(JSON.stringify(nsCr))), NsCodec.fromPartial(fullNs));
    const nseCr = nseToResource(fullNse, 'default');
    assert.deepEqual(nseFromResource(JSON.parse(JSON.stringify(nseCr))), NseCodec.fromPartial(fullNse));
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
      [{ ...base, spec: { matches: [{ source_selector: { a: 1 } }] } }, 'spec.matches[0].source_selector'],
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
    assert.deepEqual(timestampToJson(new Date(0)), {});
    assert.deepEqual(timestampToJson(new Date(-1500)), { seconds: -2, nanos: 500_000_000 });
    assert.equal(timestampFromJson({ seconds: -2, nanos: 500_000_000 }, 't')?.getTime(), -1500);
    assert.equal(timestampFromJson({ seconds: '12' }, 't')?.getTime(), 12_000);
    assert.equal(timestampFromJson(undefined, 't'), undefined);
  });
});
