/**
 * Wire compatibility of the generated API (nsm-spec §1.1, §1.2): method paths, streaming kinds, and
 * every field number, checked by encoding each field alone with the generated encoder and reading the
 * tag back with a small varint reader, so what is verified is the bytes we put on the wire.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Connection,
  ConnectionEvent,
  ConnectionEventType,
  Mechanism,
  MonitorConnectionDefinition,
  MonitorScopeSelector,
  Path,
  PathSegment,
  State,
} from './gen/connection.js';
import {
  ConnectionContext,
  DNSConfig,
  DNSContext,
  EthernetContext,
  ExtraPrefixRequest,
  IPContext,
  IpFamily,
  IpFamily_Family,
  IpNeighbor,
  PolicyRoute,
  Route,
} from './gen/connectioncontext.js';
import { Timestamp } from './gen/google/protobuf/timestamp.js';
import { HealthDefinition } from './gen/health.js';
import { SpiffeWorkloadAPIDefinition, X509BundlesResponse, X509SVID, X509SVIDResponse } from './gen/workload.js';
import { NetworkServiceDefinition, NetworkServiceRequest } from './gen/networkservice.js';
import {
  Destination,
  Match,
  Metadata,
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceEndpointRegistryDefinition,
  NetworkServiceEndpointResponse,
  NetworkServiceLabels,
  NetworkServiceQuery,
  NetworkServiceRegistryDefinition,
  NetworkServiceResponse,
} from './gen/registry.js';

// ---- a tiny protobuf reader: top-level (field number, wire type) pairs --------------------------

function readVarint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const b = buf[pos++];
    value += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [value, pos];
    shift += 7;
  }
}

function tags(buf: Uint8Array): Array<[field: number, wireType: number]> {
  const out: Array<[number, number]> = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p] = readVarint(buf, pos);
    pos = p;
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    out.push([field, wt]);
    if (wt === 0) pos = readVarint(buf, pos)[1];
    else if (wt === 1) pos += 8;
    else if (wt === 5) pos += 4;
    else if (wt === 2) {
      const [len, q] = readVarint(buf, pos);
      pos = q + len;
    } else throw new Error(`unexpected wire type ${wt}`);
  }
  assert.equal(pos, buf.length, 'message parsed to the end');
  return out;
}

const VARINT = 0;
const LEN = 2;

interface Codec {
  fromPartial(o: never): unknown;
  encode(m: never): { finish(): Uint8Array };
}

/** [proto field name (§1.2), number, wire type, partial setting only that field] */
type FieldCase = [string, number, number, Record<string, unknown>];

function checkMessage(name: string, codec: Codec, cases: FieldCase[]): void {
  describe(name, () => {
    for (const [field, num, wt, partial] of cases) {
      it(`${field} = ${num}`, () => {
        const msg = (codec.fromPartial as (o: unknown) => unknown)(partial);
        const bytes = (codec.encode as (m: unknown) => { finish(): Uint8Array })(msg).finish();
        assert.deepEqual(tags(bytes), [[num, wt]], `${name}.${field}`);
      });
    }
    it('all fields together carry exactly the listed numbers', () => {
      const all = Object.assign({}, ...cases.map((c) => c[3]));
      const bytes = (codec.encode as (m: unknown) => { finish(): Uint8Array })((codec.fromPartial as (o: unknown) => unknown)(all)).finish();
      assert.deepEqual(
        [...new Set(tags(bytes).map((t) => t[0]))].sort((a, b) => a - b),
        cases.map((c) => c[1]).sort((a, b) => a - b),
      );
    });
  });
}

const when = new Date(1_700_000_000_500);

describe('wire: method paths (§1.1)', () => {
  const cases: Array<[{ fullName: string; methods: Record<string, { name: string; requestStream: boolean; responseStream: boolean }> }, string, string, boolean]> = [
    [NetworkServiceDefinition, 'request', '/networkservice.NetworkService/Request', false],
    [NetworkServiceDefinition, 'close', '/networkservice.NetworkService/Close', false],
    [MonitorConnectionDefinition, 'monitorConnections', '/connection.MonitorConnection/MonitorConnections', true],
    [NetworkServiceRegistryDefinition, 'register', '/registry.NetworkServiceRegistry/Register', false],
    [NetworkServiceRegistryDefinition, 'find', '/registry.NetworkServiceRegistry/Find', true],
    [NetworkServiceRegistryDefinition, 'unregister', '/registry.NetworkServiceRegistry/Unregister', false],
    [NetworkServiceEndpointRegistryDefinition, 'register', '/registry.NetworkServiceEndpointRegistry/Register', false],
    [NetworkServiceEndpointRegistryDefinition, 'find', '/registry.NetworkServiceEndpointRegistry/Find', true],
    [NetworkServiceEndpointRegistryDefinition, 'unregister', '/registry.NetworkServiceEndpointRegistry/Unregister', false],
    [HealthDefinition, 'check', '/grpc.health.v1.Health/Check', false],
    // SPIFFE's workload.proto has no package: the service name alone
    [SpiffeWorkloadAPIDefinition, 'fetchX509SVID', '/SpiffeWorkloadAPI/FetchX509SVID', true],
    [SpiffeWorkloadAPIDefinition, 'fetchX509Bundles', '/SpiffeWorkloadAPI/FetchX509Bundles', true],
  ];
  for (const [def, key, path, serverStream] of cases) {
    it(path, () => {
      const m = def.methods[key];
      assert.ok(m, `method ${key} exists`);
      assert.equal(`/${def.fullName}/${m.name}`, path);
      assert.equal(m.requestStream, false, 'no client streaming');
      assert.equal(m.responseStream, serverStream, serverStream ? 'server-streaming' : 'unary');
    });
  }
  it('each service has exactly the listed methods', () => {
    assert.deepEqual(Object.keys(NetworkServiceDefinition.methods).sort(), ['close', 'request']);
    assert.deepEqual(Object.keys(MonitorConnectionDefinition.methods), ['monitorConnections']);
    assert.deepEqual(Object.keys(NetworkServiceRegistryDefinition.methods).sort(), ['find', 'register', 'unregister']);
    assert.deepEqual(Object.keys(NetworkServiceEndpointRegistryDefinition.methods).sort(), ['find', 'register', 'unregister']);
    assert.deepEqual(Object.keys(SpiffeWorkloadAPIDefinition.methods).sort(), ['fetchX509Bundles', 'fetchX509SVID']);
  });
});

describe('wire: enums (§1.2)', () => {
  it('connection.State', () => {
    assert.deepEqual([State.UP, State.DOWN, State.REFRESH_REQUESTED, State.RESELECT_REQUESTED], [0, 1, 2, 3]);
    // UP is the zero value: a connection with state UP carries no state field on the wire
    assert.deepEqual(tags(Connection.encode(Connection.fromPartial({ state: State.UP })).finish()), []);
    assert.deepEqual(tags(Connection.encode(Connection.fromPartial({ state: State.DOWN })).finish()), [[9, VARINT]]);
  });
  it('connection.ConnectionEventType', () => {
    assert.deepEqual([ConnectionEventType.INITIAL_STATE_TRANSFER, ConnectionEventType.UPDATE, ConnectionEventType.DELETE], [0, 1, 2]);
  });
  it('connectioncontext.IpFamily.Family', () => {
    assert.deepEqual([IpFamily_Family.IPV4, IpFamily_Family.IPV6], [0, 1]);
  });
  it('enum values decode from the numbers upstream sends', () => {
    const bytes = Uint8Array.of(9 << 3, 3); // field 9 (state) = 3
    assert.equal(Connection.decode(bytes).state, State.RESELECT_REQUESTED);
    const ev = Uint8Array.of(1 << 3, 2); // field 1 (type) = 2
    assert.equal(ConnectionEvent.decode(ev).type, ConnectionEventType.DELETE);
  });
});

describe('wire: field numbers (§1.2)', () => {
  checkMessage('networkservice.NetworkServiceRequest', NetworkServiceRequest, [
    ['connection', 1, LEN, { connection: { id: 'x' } }],
    ['mechanism_preferences', 2, LEN, { mechanismPreferences: [{ cls: 'LOCAL' }] }],
  ]);
  checkMessage('connection.Connection', Connection, [
    ['id', 1, LEN, { id: 'x' }],
    ['network_service', 2, LEN, { networkService: 'ns' }],
    ['mechanism', 3, LEN, { mechanism: { type: 'KERNEL' } }],
    ['context', 4, LEN, { context: { MTU: 1500 } }],
    ['labels', 5, LEN, { labels: { a: 'b' } }],
    ['path', 6, LEN, { path: { index: 1 } }],
    ['network_service_endpoint_name', 7, LEN, { networkServiceEndpointName: 'nse' }],
    ['payload', 8, LEN, { payload: 'ETHERNET' }],
    ['state', 9, VARINT, { state: State.DOWN }],
  ]);
  checkMessage('connection.Mechanism', Mechanism, [
    ['cls', 1, LEN, { cls: 'LOCAL' }],
    ['type', 2, LEN, { type: 'KERNEL' }],
    ['parameters', 3, LEN, { parameters: { name: 'nsm-1' } }],
  ]);
  checkMessage('connection.PathSegment', PathSegment, [
    ['name', 1, LEN, { name: 'n' }],
    ['id', 2, LEN, { id: 'i' }],
    ['token', 3, LEN, { token: 't' }],
    ['expires', 4, LEN, { expires: when }],
    ['metrics', 5, LEN, { metrics: { a: '1' } }],
  ]);
  checkMessage('connection.Path', Path, [
    ['index', 1, VARINT, { index: 2 }],
    ['path_segments', 2, LEN, { pathSegments: [{ name: 'n' }] }],
  ]);
  checkMessage('connection.ConnectionEvent', ConnectionEvent, [
    ['type', 1, VARINT, { type: ConnectionEventType.UPDATE }],
    ['connections', 2, LEN, { connections: { id1: { id: 'id1' } } }],
  ]);
  checkMessage('connection.MonitorScopeSelector', MonitorScopeSelector, [
    ['path_segments', 1, LEN, { pathSegments: [{ id: 'x' }] }],
    ['network_services', 2, LEN, { networkServices: ['ns'] }],
  ]);
  checkMessage('connectioncontext.ConnectionContext', ConnectionContext, [
    ['ip_context', 1, LEN, { ipContext: { srcIpRequired: true } }],
    ['dns_context', 2, LEN, { dnsContext: { configs: [{ dnsServerIps: ['1.1.1.1'] }] } }],
    ['ethernet_context', 3, LEN, { ethernetContext: { vlanTag: 1 } }],
    ['extra_context', 4, LEN, { extraContext: { a: 'b' } }],
    ['MTU', 5, VARINT, { MTU: 1500 }],
  ]);
  checkMessage('connectioncontext.IPContext', IPContext, [
    ['src_ip_addrs', 1, LEN, { srcIpAddrs: ['172.16.1.101/32'] }],
    ['dst_ip_addrs', 2, LEN, { dstIpAddrs: ['172.16.1.100/32'] }],
    ['src_ip_required', 3, VARINT, { srcIpRequired: true }],
    ['dst_ip_required', 4, VARINT, { dstIpRequired: true }],
    ['src_routes', 5, LEN, { srcRoutes: [{ prefix: '10.0.0.0/8' }] }],
    ['dst_routes', 6, LEN, { dstRoutes: [{ prefix: '10.0.0.0/8' }] }],
    ['excluded_prefixes', 7, LEN, { excludedPrefixes: ['10.96.0.0/12'] }],
    ['ip_neighbors', 8, LEN, { ipNeighbors: [{ ip: '1.1.1.1' }] }],
    ['extra_prefix_request', 9, LEN, { extraPrefixRequest: [{ prefixLen: 24 }] }],
    ['extra_prefixes', 10, LEN, { extraPrefixes: ['10.1.0.0/24'] }],
    ['policies', 11, LEN, { policies: [{ from: '10.0.0.1/32' }] }],
  ]);
  checkMessage('connectioncontext.Route', Route, [
    ['prefix', 1, LEN, { prefix: '10.0.0.0/8' }],
    ['nextHop', 2, LEN, { nextHop: '10.0.0.1' }],
  ]);
  checkMessage('connectioncontext.IpNeighbor', IpNeighbor, [
    ['ip', 1, LEN, { ip: '10.0.0.1' }],
    ['hardware_address', 2, LEN, { hardwareAddress: '02:00:00:00:00:01' }],
  ]);
  checkMessage('connectioncontext.IpFamily', IpFamily, [['family', 1, VARINT, { family: IpFamily_Family.IPV6 }]]);
  checkMessage('connectioncontext.ExtraPrefixRequest', ExtraPrefixRequest, [
    ['addr_family', 1, LEN, { addrFamily: { family: IpFamily_Family.IPV6 } }],
    ['prefix_len', 2, VARINT, { prefixLen: 24 }],
    ['required_number', 3, VARINT, { requiredNumber: 1 }],
    ['requested_number', 4, VARINT, { requestedNumber: 2 }],
  ]);
  checkMessage('connectioncontext.PolicyRoute', PolicyRoute, [
    ['from', 1, LEN, { from: '10.0.0.1/32' }],
    ['proto', 2, LEN, { proto: '6' }],
    ['dst_port', 3, LEN, { dstPort: '80' }],
    ['src_port', 4, LEN, { srcPort: '8080' }],
    ['routes', 5, LEN, { routes: [{ prefix: '0.0.0.0/0' }] }],
  ]);
  checkMessage('connectioncontext.DNSConfig', DNSConfig, [
    ['dns_server_ips', 1, LEN, { dnsServerIps: ['1.1.1.1'] }],
    ['search_domains', 2, LEN, { searchDomains: ['svc.local'] }],
  ]);
  checkMessage('connectioncontext.DNSContext', DNSContext, [['configs', 1, LEN, { configs: [{ searchDomains: ['a'] }] }]]);
  checkMessage('connectioncontext.EthernetContext', EthernetContext, [
    ['src_mac', 1, LEN, { srcMac: '02:00:00:00:00:01' }],
    ['dst_mac', 2, LEN, { dstMac: '02:00:00:00:00:02' }],
    ['vlan_tag', 3, VARINT, { vlanTag: 100 }],
  ]);
  checkMessage('google.protobuf.Timestamp', Timestamp, [
    ['seconds', 1, VARINT, { seconds: 1_700_000_000 }],
    ['nanos', 2, VARINT, { nanos: 500 }],
  ]);

  checkMessage('registry.NetworkService', NetworkService, [
    ['name', 1, LEN, { name: 'ns' }],
    ['payload', 2, LEN, { payload: 'IP' }],
    ['matches', 3, LEN, { matches: [{ fallthrough: true }] }],
    ['path_ids', 4, LEN, { pathIds: ['p'] }],
  ]);
  checkMessage('registry.Match', Match, [
    ['source_selector', 1, LEN, { sourceSelector: { app: 'a' } }],
    ['routes', 2, LEN, { routes: [{ weight: 1 }] }],
    ['fallthrough', 3, VARINT, { fallthrough: true }],
    ['metadata', 4, LEN, { metadata: { labels: { a: 'b' } } }],
  ]);
  checkMessage('registry.Metadata', Metadata, [['labels', 1, LEN, { labels: { a: 'b' } }]]);
  checkMessage('registry.Destination', Destination, [
    ['destination_selector', 1, LEN, { destinationSelector: { a: 'b' } }],
    ['weight', 2, VARINT, { weight: 3 }],
  ]);
  checkMessage('registry.NetworkServiceLabels', NetworkServiceLabels, [['labels', 1, LEN, { labels: { a: 'b' } }]]);
  checkMessage('registry.NetworkServiceEndpoint', NetworkServiceEndpoint, [
    ['name', 1, LEN, { name: 'nse' }],
    ['network_service_names', 2, LEN, { networkServiceNames: ['ns'] }],
    ['network_service_labels', 3, LEN, { networkServiceLabels: { ns: { labels: { a: 'b' } } } }],
    ['url', 4, LEN, { url: 'tcp://1.2.3.4:5001' }],
    ['expiration_time', 5, LEN, { expirationTime: when }],
    ['initial_registration_time', 6, LEN, { initialRegistrationTime: when }],
    ['path_ids', 7, LEN, { pathIds: ['p'] }],
  ]);
  checkMessage('registry.NetworkServiceQuery', NetworkServiceQuery, [
    ['network_service', 1, LEN, { networkService: { name: 'ns' } }],
    ['watch', 2, VARINT, { watch: true }],
  ]);
  checkMessage('registry.NetworkServiceEndpointQuery', NetworkServiceEndpointQuery, [
    ['network_service_endpoint', 1, LEN, { networkServiceEndpoint: { name: 'nse' } }],
    ['watch', 2, VARINT, { watch: true }],
  ]);
  checkMessage('registry.NetworkServiceResponse', NetworkServiceResponse, [
    ['network_service', 1, LEN, { networkService: { name: 'ns' } }],
    ['deleted', 2, VARINT, { deleted: true }],
  ]);
  checkMessage('registry.NetworkServiceEndpointResponse', NetworkServiceEndpointResponse, [
    ['network_service_endpoint', 1, LEN, { networkServiceEndpoint: { name: 'nse' } }],
    ['deleted', 2, VARINT, { deleted: true }],
  ]);

  // SPIFFE Workload API (standards/SPIFFE_Workload_API.md §5.1)
  checkMessage('X509SVIDResponse', X509SVIDResponse, [
    ['svids', 1, LEN, { svids: [{ spiffeId: 'spiffe://td/x' }] }],
    ['crl', 2, LEN, { crl: [Buffer.from([1])] }],
    ['federated_bundles', 3, LEN, { federatedBundles: { 'spiffe://other': Buffer.from([1]) } }],
  ]);
  checkMessage('X509SVID', X509SVID, [
    ['spiffe_id', 1, LEN, { spiffeId: 'spiffe://td/x' }],
    ['x509_svid', 2, LEN, { x509Svid: Buffer.from([1]) }],
    ['x509_svid_key', 3, LEN, { x509SvidKey: Buffer.from([1]) }],
    ['bundle', 4, LEN, { bundle: Buffer.from([1]) }],
    ['hint', 5, LEN, { hint: 'internal' }],
  ]);
  checkMessage('X509BundlesResponse', X509BundlesResponse, [
    ['crl', 1, LEN, { crl: [Buffer.from([1])] }],
    ['bundles', 2, LEN, { bundles: { 'spiffe://td': Buffer.from([1]) } }],
  ]);

  it('nested: map<string, NetworkServiceLabels> entry is {1: key, 2: value}', () => {
    const bytes = NetworkServiceEndpoint.encode(NetworkServiceEndpoint.fromPartial({ networkServiceLabels: { svc: { labels: { a: 'b' } } } })).finish();
    // skip the outer tag+length to reach the entry body
    const [len, start] = readVarint(bytes, 1);
    assert.deepEqual(tags(bytes.subarray(start, start + len)), [[1, LEN], [2, LEN]]);
  });

  it('Timestamp inside NSE round-trips seconds and nanos', () => {
    const nse = NetworkServiceEndpoint.decode(NetworkServiceEndpoint.encode(NetworkServiceEndpoint.fromPartial({ expirationTime: when })).finish());
    assert.equal(nse.expirationTime?.getTime(), when.getTime());
  });
});
