import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Connection, MonitorScopeSelector } from './gen/connection.js';
import { NetworkServiceRequest } from './gen/networkservice.js';
import { NetworkService, NetworkServiceEndpoint } from './gen/registry.js';
import {
  MAX_ID_LENGTH,
  MAX_LABEL_KEY_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
  MAX_LABELS,
  MAX_MECHANISM_PARAMETERS,
  MAX_NAME_LENGTH,
  MAX_PATH_SEGMENTS,
  MAX_URL_LENGTH,
  checkConnection,
  checkNs,
  checkNse,
  checkRequest,
  checkSelector,
} from './limits.js';

const x = (n: number) => 'x'.repeat(n);
const labels = (n: number, value = 'v') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]));
const segs = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `h${i}`, id: `i${i}` }));

function refuses(fn: () => void, field: string): void {
  assert.throws(fn, (e: Error & { field?: string }) => {
    assert.equal(e.name, 'InvalidArgumentError');
    assert.equal(e.field, field);
    assert.ok(e.message.length < 400, `excerpt, not the whole value: ${e.message.length} characters`);
    return true;
  });
}

describe('limits: a value at the limit passes, one over it is refused naming the field', () => {
  it('connection', () => {
    const at = Connection.fromPartial({
      id: x(MAX_ID_LENGTH),
      networkService: x(MAX_NAME_LENGTH),
      labels: { ...labels(MAX_LABELS - 1), [x(MAX_LABEL_KEY_LENGTH)]: x(MAX_LABEL_VALUE_LENGTH) },
      path: { index: 0, pathSegments: segs(MAX_PATH_SEGMENTS) },
      mechanism: { cls: 'LOCAL', type: 'KERNEL', parameters: labels(MAX_MECHANISM_PARAMETERS) },
    });
    checkConnection(at);
    refuses(() => checkConnection({ ...at, id: x(MAX_ID_LENGTH + 1) }), 'connection.id');
    refuses(() => checkConnection({ ...at, networkService: x(MAX_NAME_LENGTH + 1) }), 'connection.network_service');
    refuses(() => checkConnection({ ...at, labels: labels(MAX_LABELS + 1) }), 'connection.labels');
    refuses(() => checkConnection({ ...at, labels: { a: x(MAX_LABEL_VALUE_LENGTH + 1) } }), 'connection.labels["a"]');
    refuses(() => checkConnection({ ...at, labels: { [x(MAX_LABEL_KEY_LENGTH + 1)]: 'v' } }), 'connection.labels key');
    refuses(() => checkConnection(Connection.fromPartial({ path: { index: 0, pathSegments: segs(MAX_PATH_SEGMENTS + 1) } })), 'connection.path.path_segments');
    refuses(() => checkConnection(Connection.fromPartial({ path: { index: 0, pathSegments: [{ name: 'a', id: x(300) }] } })), 'connection.path.path_segments[0].id');
    refuses(() => checkConnection({ ...at, mechanism: { cls: '', type: 'K', parameters: labels(MAX_MECHANISM_PARAMETERS + 1) } }), 'connection.mechanism.parameters');
  });

  it('request, selector', () => {
    checkRequest(NetworkServiceRequest.fromPartial({ connection: { id: 'a' }, mechanismPreferences: [{ type: 'KERNEL', parameters: { inodeURL: x(4096) } }] }));
    refuses(() => checkRequest(NetworkServiceRequest.fromPartial({ mechanismPreferences: [{ type: 'KERNEL', parameters: { inodeURL: x(4097) } }] })), 'mechanism_preferences[0].parameters["inodeURL"]');
    checkSelector(MonitorScopeSelector.fromPartial({ pathSegments: segs(MAX_PATH_SEGMENTS), networkServices: [x(MAX_NAME_LENGTH)] }));
    refuses(() => checkSelector(MonitorScopeSelector.fromPartial({ networkServices: [x(MAX_NAME_LENGTH + 1)] })), 'network_services[0]');
  });

  it('registry: endpoint and service, with a prefix for Find queries', () => {
    const nse = NetworkServiceEndpoint.fromPartial({ name: x(MAX_NAME_LENGTH), url: x(MAX_URL_LENGTH), networkServiceLabels: { svc: { labels: labels(MAX_LABELS) } } });
    checkNse(nse);
    refuses(() => checkNse({ ...nse, url: x(MAX_URL_LENGTH + 1) }), 'url');
    refuses(() => checkNse({ ...nse, name: x(1_000_000) }, 'network_service_endpoint.'), 'network_service_endpoint.name');
    refuses(() => checkNse({ ...nse, networkServiceLabels: { svc: { labels: labels(MAX_LABELS + 1) } } }), 'network_service_labels["svc"].labels');
    const ns = NetworkService.fromPartial({ name: x(MAX_NAME_LENGTH), matches: [{ sourceSelector: labels(MAX_LABELS), routes: [{ destinationSelector: labels(1) }] }] });
    checkNs(ns);
    refuses(() => checkNs({ ...ns, name: x(MAX_NAME_LENGTH + 1) }, 'network_service.'), 'network_service.name');
    refuses(() => checkNs({ ...ns, matches: [{ sourceSelector: {}, fallthrough: false, metadata: undefined, routes: [{ weight: 0, destinationSelector: labels(MAX_LABELS + 1) }] }] }), 'matches[0].routes[0].destination_selector');
  });
});
