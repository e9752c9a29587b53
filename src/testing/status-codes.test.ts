/**
 * Status codes over real gRPC, as a client built from the protos sees them, at every server of the
 * sandbox mesh (nsmgr, forwarder, NSE, registry): INVALID_ARGUMENT for a malformed call (naming the field,
 * with an excerpt of a long value), NOT_FOUND only for a well-formed call that nothing can serve, never
 * UNKNOWN. The forwarder's data plane resolves real netns URLs with the Linux resolver (a netns that does
 * not exist, or a malformed URL), so the netns cases run the real resolution without root and without
 * touching the kernel: resolution fails before anything would be created.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ClientError, createClient, Status } from 'nice-grpc';
import { CLS_LOCAL, MECH_KERNEL } from '../api/constants.js';
import { ConnectionEventType, MonitorConnectionDefinition, type Connection, type Mechanism, type MonitorScopeSelector } from '../api/gen/connection.js';
import { NetworkServiceDefinition, type NetworkServiceRequest } from '../api/gen/networkservice.js';
import { NetworkServiceEndpointRegistryDefinition, NetworkServiceRegistryDefinition, type NetworkService, type NetworkServiceEndpoint } from '../api/gen/registry.js';
import type { DeepPartial } from '../api/gen/connection.js';
import { MAX_ID_LENGTH, MAX_LABELS, MAX_LIST_LENGTH, MAX_MECHANISM_PARAMETERS, MAX_MECHANISM_PREFERENCES, MAX_NAME_LENGTH, MAX_PATH_SEGMENTS, MAX_TOKEN_LENGTH, MAX_URL_LENGTH } from '../api/limits.js';
import { DataplaneError } from '../core/errors.js';
import { linkSignals } from '../core/signals.js';
import { ChannelPool } from '../core/transport.js';
import { NetnsResolver } from '../dataplane/linux/netns.js';
import type { OpOptions, PairSpec, PairState } from '../dataplane/types.js';
import { sandbox, SandboxDataPlane, type Sandbox } from './sandbox.js';
import { INSECURE } from '../security/tls.js';

/** Resolves every netns that is not a sandbox one (`fake://…`) with the real resolver; `fake://broken` fails as the kernel would. */
class ResolvingDataPlane extends SandboxDataPlane {
  readonly #resolver = new NetnsResolver();
  override async ensure(spec: PairSpec, opts?: OpOptions): Promise<PairState> {
    for (const url of [spec.nsc.netns, spec.nse.netns]) {
      if (url === 'fake://broken') throw new DataplaneError('create veth', 'RTNETLINK answers: Operation not permitted');
      if (!url.startsWith('fake://')) await this.#resolver.resolve(url);
    }
    return super.ensure(spec, opts);
  }
}

type Target = 'nsmgr' | 'forwarder' | 'nse';
const long = (n: number, c = 'x') => c.repeat(n);
const many = <T>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));
const labels = (n: number) => Object.fromEntries(many(n, (i) => [`k${i}`, 'v']));
let seq = 0;

function kernel(netns = 'fake://nsc-t', name = 'nsm-1', extra: Record<string, string> = {}): Mechanism {
  return { cls: CLS_LOCAL, type: MECH_KERNEL, parameters: { inodeURL: netns, name, ...extra } };
}

/** A well-formed first Request for `svc` with fields replaced by `conn` / `req`. */
function request(conn: DeepPartial<Connection> = {}, req: DeepPartial<NetworkServiceRequest> = {}): DeepPartial<NetworkServiceRequest> {
  return { connection: { id: `c-${++seq}`, networkService: 'svc', ...conn }, mechanismPreferences: [kernel()], ...req };
}

const segs = (n: number) => many(n, (i) => ({ name: `hop-${i}`, id: `id-${i}` }));

interface Row {
  readonly what: string;
  readonly code: Status;
  /** For INVALID_ARGUMENT: the field the message names. For NOT_FOUND: what it names. */
  readonly names?: string;
}

/** Request cases, sent to each of nsmgr, forwarder and NSE. */
const requestRows: Array<Row & { req: DeepPartial<NetworkServiceRequest> }> = [
  { what: 'no connection', req: { mechanismPreferences: [kernel()] }, code: Status.INVALID_ARGUMENT, names: 'connection' },
  { what: 'no network service', req: request({ networkService: '' }), code: Status.INVALID_ARGUMENT, names: 'connection.network_service' },
  { what: 'oversized id', req: request({ id: long(100_000) }), code: Status.INVALID_ARGUMENT, names: 'connection.id' },
  { what: `id of ${MAX_ID_LENGTH + 1} characters`, req: request({ id: long(MAX_ID_LENGTH + 1) }), code: Status.INVALID_ARGUMENT, names: 'connection.id' },
  { what: 'oversized network service name', req: request({ networkService: long(MAX_NAME_LENGTH + 1) }), code: Status.INVALID_ARGUMENT, names: 'connection.network_service' },
  { what: 'oversized endpoint name', req: request({ networkServiceEndpointName: long(MAX_NAME_LENGTH + 1) }), code: Status.INVALID_ARGUMENT, names: 'connection.network_service_endpoint_name' },
  { what: 'path index beyond the path', req: request({ path: { index: 3, pathSegments: segs(2) } }), code: Status.INVALID_ARGUMENT, names: 'connection.path.index' },
  { what: 'path index without a path', req: request({ path: { index: 1, pathSegments: [] } }), code: Status.INVALID_ARGUMENT, names: 'connection.path.index' },
  { what: 'path segment without an id', req: request({ path: { index: 0, pathSegments: [{ name: 'a', id: '' }] } }), code: Status.INVALID_ARGUMENT, names: 'connection.path.path_segments[0].id' },
  { what: 'too many path segments', req: request({ path: { index: 0, pathSegments: segs(MAX_PATH_SEGMENTS + 1) } }), code: Status.INVALID_ARGUMENT, names: 'connection.path.path_segments' },
  { what: 'oversized path token', req: request({ path: { index: 0, pathSegments: [{ name: 'a', id: 'b', token: long(MAX_TOKEN_LENGTH + 1) }] } }), code: Status.INVALID_ARGUMENT, names: 'connection.path.path_segments[0].token' },
  { what: 'too many labels', req: request({ labels: labels(MAX_LABELS + 1) }), code: Status.INVALID_ARGUMENT, names: 'connection.labels' },
  { what: 'oversized label value', req: request({ labels: { app: long(100_000) } }), code: Status.INVALID_ARGUMENT, names: 'connection.labels["app"]' },
  { what: 'oversized label key', req: request({ labels: { [long(1000)]: 'v' } }), code: Status.INVALID_ARGUMENT, names: 'connection.labels key' },
  { what: 'mechanism preference without a type', req: request({}, { mechanismPreferences: [{ cls: CLS_LOCAL, type: '', parameters: {} }] }), code: Status.INVALID_ARGUMENT, names: 'mechanism_preferences[0].type' },
  { what: 'too many mechanism preferences', req: request({}, { mechanismPreferences: many(MAX_MECHANISM_PREFERENCES + 1, () => kernel()) }), code: Status.INVALID_ARGUMENT, names: 'mechanism_preferences' },
  {
    what: 'too many mechanism parameters',
    req: request({}, { mechanismPreferences: [kernel(undefined, undefined, Object.fromEntries(many(MAX_MECHANISM_PARAMETERS, (i) => [`p${i}`, 'v'])))] }),
    code: Status.INVALID_ARGUMENT,
    names: 'mechanism_preferences[0].parameters',
  },
  { what: 'oversized mechanism parameter', req: request({}, { mechanismPreferences: [kernel(undefined, undefined, { x: long(100_000) })] }), code: Status.INVALID_ARGUMENT, names: 'mechanism_preferences[0].parameters["x"]' },
  { what: 'too many excluded prefixes', req: request({ context: { ipContext: { excludedPrefixes: many(MAX_LIST_LENGTH + 1, () => '10.0.0.0/8') } } }), code: Status.INVALID_ARGUMENT, names: 'connection.context.ip_context.excluded_prefixes' },
];

/** Close cases, sent to each of nsmgr, forwarder and NSE. */
const closeRows: Array<Row & { conn: DeepPartial<Connection> }> = [
  { what: 'no id and no path', conn: { networkService: 'svc' }, code: Status.INVALID_ARGUMENT, names: 'connection.id' },
  { what: 'oversized id', conn: { id: long(100_000) }, code: Status.INVALID_ARGUMENT, names: 'connection.id' },
  { what: 'path index beyond the path', conn: { id: 'a', path: { index: 5, pathSegments: segs(1) } }, code: Status.INVALID_ARGUMENT, names: 'connection.path.index' },
  { what: 'too many labels', conn: { id: 'a', labels: labels(MAX_LABELS + 1) }, code: Status.INVALID_ARGUMENT, names: 'connection.labels' },
  { what: 'an unknown connection (nothing to close)', conn: { id: 'never-requested', networkService: 'svc' }, code: Status.OK },
];

/** MonitorConnections cases, sent to each of nsmgr, forwarder and NSE. */
const monitorRows: Array<Row & { selector: DeepPartial<MonitorScopeSelector> }> = [
  { what: 'too many path segments', selector: { pathSegments: segs(MAX_PATH_SEGMENTS + 1) }, code: Status.INVALID_ARGUMENT, names: 'path_segments' },
  { what: 'oversized segment id', selector: { pathSegments: [{ id: long(100_000) }] }, code: Status.INVALID_ARGUMENT, names: 'path_segments[0].id' },
  { what: 'oversized network service', selector: { networkServices: [long(MAX_NAME_LENGTH + 1)] }, code: Status.INVALID_ARGUMENT, names: 'network_services[0]' },
  { what: 'an empty selector (everything)', selector: {}, code: Status.OK },
];

/** Well-formed Requests that nothing serves, or that the data plane refuses, to `target`. */
const servingRows: Array<Row & { target: Target; req: () => DeepPartial<NetworkServiceRequest> }> = [
  { what: 'unknown network service', target: 'nsmgr', req: () => request({ networkService: 'no-such-service' }), code: Status.NOT_FOUND, names: 'no-such-service' },
  { what: 'unknown network service', target: 'forwarder', req: () => request({ networkService: 'no-such-service' }), code: Status.NOT_FOUND, names: 'no-such-service' },
  { what: 'a service without endpoints', target: 'nsmgr', req: () => request({ networkService: 'lonely' }), code: Status.NOT_FOUND, names: 'lonely' },
  { what: 'a netns that does not exist', target: 'nsmgr', req: () => request({}, { mechanismPreferences: [kernel('inode://4/1')] }), code: Status.NOT_FOUND, names: 'inode://4/1' },
  { what: 'a netns that does not exist', target: 'forwarder', req: () => request({}, { mechanismPreferences: [kernel('file:///run/netns/nsmt-does-not-exist')] }), code: Status.NOT_FOUND, names: 'nsmt-does-not-exist' },
  { what: 'a malformed netns URL', target: 'nsmgr', req: () => request({}, { mechanismPreferences: [kernel('netns://pod')] }), code: Status.INVALID_ARGUMENT, names: 'inodeURL' },
  { what: 'a file that is no netns', target: 'forwarder', req: () => request({}, { mechanismPreferences: [kernel('file:///etc/hostname')] }), code: Status.INVALID_ARGUMENT, names: 'inodeURL' },
  { what: 'an interface name the kernel refuses', target: 'nsmgr', req: () => request({}, { mechanismPreferences: [kernel(undefined, '..')] }), code: Status.INVALID_ARGUMENT, names: 'nsc.mechanism.parameters.name' },
  { what: 'no netns in the kernel mechanism', target: 'forwarder', req: () => request({}, { mechanismPreferences: [{ cls: CLS_LOCAL, type: MECH_KERNEL, parameters: { name: 'nsm-1' } }] }), code: Status.INVALID_ARGUMENT, names: 'inodeURL' },
  { what: 'a kernel failure passes through nsmgr as INTERNAL', target: 'nsmgr', req: () => request({}, { mechanismPreferences: [kernel('fake://broken')] }), code: Status.INTERNAL, names: 'create veth' },
  { what: 'a well-formed Request', target: 'nsmgr', req: () => request(), code: Status.OK },
];

type Kind = 'registry' | 'nsmgr';
const nse = (o: DeepPartial<NetworkServiceEndpoint>): DeepPartial<NetworkServiceEndpoint> => ({ name: 'nse-x', url: 'tcp://10.0.0.1:5001', networkServiceNames: ['svc'], ...o });
const ns = (o: DeepPartial<NetworkService>): DeepPartial<NetworkService> => ({ name: 'svc-x', payload: 'ETHERNET', ...o });

/** Registry cases, sent to the registry and to nsmgr (which serves both registries too). */
const registryRows: Array<Row & { call: 'nse.register' | 'nse.unregister' | 'nse.find' | 'ns.register' | 'ns.unregister' | 'ns.find'; arg: unknown }> = [
  { what: 'NSE without a name', call: 'nse.register', arg: nse({ name: '' }), code: Status.INVALID_ARGUMENT, names: 'name' },
  { what: 'oversized NSE name', call: 'nse.register', arg: nse({ name: long(100_000) }), code: Status.INVALID_ARGUMENT, names: 'name' },
  { what: 'oversized NSE URL', call: 'nse.register', arg: nse({ url: `tcp://${long(MAX_URL_LENGTH)}:1` }), code: Status.INVALID_ARGUMENT, names: 'url' },
  { what: 'too many NSE service names', call: 'nse.register', arg: nse({ networkServiceNames: many(MAX_LIST_LENGTH + 1, (i) => `s${i}`) }), code: Status.INVALID_ARGUMENT, names: 'network_service_names' },
  { what: 'too many NSE labels', call: 'nse.register', arg: nse({ networkServiceLabels: { svc: { labels: labels(MAX_LABELS + 1) } } }), code: Status.INVALID_ARGUMENT, names: 'network_service_labels["svc"].labels' },
  { what: 'oversized NSE unregister', call: 'nse.unregister', arg: nse({ name: long(MAX_NAME_LENGTH + 1) }), code: Status.INVALID_ARGUMENT, names: 'name' },
  { what: 'oversized NSE Find query', call: 'nse.find', arg: { networkServiceEndpoint: nse({ name: long(100_000) }) }, code: Status.INVALID_ARGUMENT, names: 'network_service_endpoint.name' },
  { what: 'NSE Find with too many service names', call: 'nse.find', arg: { networkServiceEndpoint: { networkServiceNames: many(MAX_LIST_LENGTH + 1, (i) => `s${i}`) } }, code: Status.INVALID_ARGUMENT, names: 'network_service_endpoint.network_service_names' },
  { what: 'a well-formed NSE Find (nothing matches)', call: 'nse.find', arg: { networkServiceEndpoint: { name: 'nobody' } }, code: Status.OK },
  { what: 'NS without a name', call: 'ns.register', arg: ns({ name: '' }), code: Status.INVALID_ARGUMENT, names: 'name' },
  { what: 'oversized NS name', call: 'ns.register', arg: ns({ name: long(100_000) }), code: Status.INVALID_ARGUMENT, names: 'name' },
  { what: 'too many NS matches', call: 'ns.register', arg: ns({ matches: many(MAX_LABELS + 1, () => ({ sourceSelector: { a: 'b' } })) }), code: Status.INVALID_ARGUMENT, names: 'matches' },
  { what: 'oversized NS unregister', call: 'ns.unregister', arg: ns({ name: long(MAX_NAME_LENGTH + 1) }), code: Status.INVALID_ARGUMENT, names: 'name' },
  { what: 'oversized NS Find query', call: 'ns.find', arg: { networkService: ns({ name: long(100_000) }) }, code: Status.INVALID_ARGUMENT, names: 'network_service.name' },
  { what: 'a well-formed NS Find (nothing matches)', call: 'ns.find', arg: { networkService: { name: 'nothing-here' } }, code: Status.OK },
];

/** The status of a call: OK, or the ClientError's code and details. Anything else fails the test. */
async function statusOf(p: () => Promise<unknown>): Promise<{ code: Status; details: string }> {
  try {
    await p();
    return { code: Status.OK, details: '' };
  } catch (err) {
    if (err instanceof ClientError) return { code: err.code, details: err.details };
    throw err;
  }
}

function check(row: Row, got: { code: Status; details: string }): void {
  assert.equal(Status[got.code], Status[row.code], `${row.what}: ${got.details}`);
  if (row.names) assert.ok(got.details.includes(row.names), `${row.what}: "${got.details}" should name ${row.names}`);
  assert.ok(got.details.length < 1000, `${row.what}: the message shows an excerpt, not the whole value (${got.details.length} characters)`);
}

describe('status codes over gRPC (nsmgr, forwarder, NSE, registry)', () => {
  let sb: Sandbox;
  const pool = new ChannelPool(INSECURE);
  const deadline = () => linkSignals([], 10_000);
  let nseUrl = '';
  const url = (t: Target | Kind) => ({ nsmgr: sb.nodes[0]!.nsmgr.url, forwarder: sb.nodes[0]!.forwarder.url, nse: nseUrl, registry: sb.registry.url })[t];

  before(async () => {
    sb = await sandbox({ dataplane: () => new ResolvingDataPlane() });
    nseUrl = (await sb.addEndpoint({ name: 'nse-1', services: ['svc'], cidr: '172.16.1.0/24' })).url;
    await sb.registerService({ name: 'lonely', payload: 'ETHERNET' });
  });
  after(async () => {
    pool.close();
    await sb.close();
  });

  async function call<T>(f: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const link = deadline();
    try {
      return await f(link.signal);
    } finally {
      link.dispose();
    }
  }

  const ns = (t: Target) => createClient(NetworkServiceDefinition, pool.get(url(t)));

  for (const target of ['nsmgr', 'forwarder', 'nse'] as const) {
    for (const row of requestRows) {
      it(`${target} Request, ${row.what}: ${Status[row.code]}`, async () => {
        check(row, await statusOf(() => call((signal) => ns(target).request(row.req, { signal }))));
      });
    }
    for (const row of closeRows) {
      it(`${target} Close, ${row.what}: ${Status[row.code]}`, async () => {
        check(row, await statusOf(() => call((signal) => ns(target).close(row.conn, { signal }))));
      });
    }
    for (const row of monitorRows) {
      it(`${target} MonitorConnections, ${row.what}: ${Status[row.code]}`, async () => {
        const got = await statusOf(() =>
          call(async (signal) => {
            for await (const ev of createClient(MonitorConnectionDefinition, pool.get(url(target))).monitorConnections(row.selector, { signal })) {
              assert.equal(ev.type, ConnectionEventType.INITIAL_STATE_TRANSFER);
              return;
            }
          }),
        );
        check(row, got);
      });
    }
  }

  for (const row of servingRows) {
    it(`${row.target} Request, ${row.what}: ${Status[row.code]}`, async () => {
      const req = row.req();
      check(row, await statusOf(() => call((signal) => ns(row.target).request(req, { signal }))));
      if (row.code === Status.OK) await call((signal) => ns(row.target).close({ ...req.connection, path: undefined }, { signal }));
    });
  }

  for (const target of ['registry', 'nsmgr'] as const) {
    for (const row of registryRows) {
      it(`${target} ${row.call}, ${row.what}: ${Status[row.code]}`, async () => {
        const nseClient = createClient(NetworkServiceEndpointRegistryDefinition, pool.get(url(target)));
        const nsClient = createClient(NetworkServiceRegistryDefinition, pool.get(url(target)));
        const drain = async (it: AsyncIterable<unknown>) => {
          for await (const _ of it) void _;
        };
        const got = await statusOf(() =>
          call<unknown>((signal) => {
            const a = row.arg as never;
            switch (row.call) {
              case 'nse.register':
                return nseClient.register(a, { signal });
              case 'nse.unregister':
                return nseClient.unregister(a, { signal });
              case 'nse.find':
                return drain(nseClient.find(a, { signal }));
              case 'ns.register':
                return nsClient.register(a, { signal });
              case 'ns.unregister':
                return nsClient.unregister(a, { signal });
              case 'ns.find':
                return drain(nsClient.find(a, { signal }));
            }
          }),
        );
        check(row, got);
      });
    }
  }

  it('nothing was left behind: no connection held by the data plane, no link, no registration from the bad calls', async () => {
    const dp = sb.nodes[0]!.dataplane;
    assert.deepEqual(dp.held(), []);
    assert.deepEqual(dp.links('fake://nse-1'), []);
    const names: string[] = [];
    for await (const r of createClient(NetworkServiceEndpointRegistryDefinition, pool.get(sb.registry.url)).find({ networkServiceEndpoint: {} })) names.push(r.networkServiceEndpoint!.name);
    assert.deepEqual(names.sort(), ['forwarder-0', 'nse-1']);
  });
});
