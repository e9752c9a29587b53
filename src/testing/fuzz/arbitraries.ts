/**
 * Generators of what a careless or hostile client sends a mesh: Requests (well-formed, odd and malformed),
 * re-Requests and Closes of what it got back, raw bytes on the NetworkService methods, MonitorConnections
 * streams with odd selectors, NSE and NS registrations (register, unregister, find and watch). A run is a
 * {@link Scenario}: batches of operations, the operations of one batch run at once.
 *
 * The generators only name network namespaces from the {@link FuzzWorld} (the test's pods, or URLs that
 * name no netns at all), so the servers under test never touch a netns the test did not create. Cases
 * that hit defects known to be open (issue 12) are off unless {@link FuzzOptions} turns them on.
 */
import fc from 'fast-check';
import { CLS_LOCAL, CLS_REMOTE, MECH_KERNEL, MECH_NOOP, PAYLOAD_ETHERNET, PAYLOAD_IP, PARAM_INODE_URL, PARAM_NAME } from '../../api/constants.js';

/** What the generators may name. */
export interface FuzzWorld {
  /** The service the NSE serves. */
  readonly service: string;
  /** Names of the hops on a connection's path. */
  readonly hops: { readonly nsmgr: string; readonly forwarder: string; readonly nse: string };
  /** netns URLs of the test's client pods: the only netns a Request may name and get an interface in. */
  readonly pods: readonly string[];
  /** Which pod each of `pods` is (two URLs may name one netns). Default: each URL its own pod. */
  readonly podOf?: readonly number[];
  /** netns URLs that name no netns (malformed, unknown inode, not a netns file): must be refused. */
  readonly badNetns: readonly string[];
  /** URL the NSE serves on (a registration may point at it under another name). */
  readonly nseUrl: string;
  /** unix:// and tcp:// URLs nothing listens on. */
  readonly deadUrls: readonly string[];
  /** Registry names of live registrations the fuzz must not overwrite or unregister. */
  readonly liveNames: readonly string[];
}

/** Generator switches aimed at issue 12's data-path defects (fixed; each has a property of its own). */
export interface FuzzOptions {
  /** Two live connections may name the same interface in one netns (issue 12 defect: "a client can destroy another client's interface"). */
  readonly sharedInterfaceNames?: boolean;
  /** One batch may hold several first Requests with one connection id (issue 12 defect: "concurrent first Requests … leak addresses"). */
  readonly concurrentSameId?: boolean;
  /**
   * A re-Request may drop the connection's path (keeping its id). Found by this suite: nsmgr takes it as a
   * re-Request of the connection, asks the forwarder for a new one, and the old forwarder and NSE
   * connections (addresses, and on a kernel data plane their links) stay until their tokens expire.
   */
  readonly pathlessRerequest?: boolean;
}

export type Target = 'nsmgr' | 'forwarder' | 'nse';
export type RegistryTarget = 'registry' | 'nsmgr';

/** An interface name: `fresh` is made unique by the driver (never shared by two connections). */
export type IfName = { kind: 'fresh' } | { kind: 'shared'; name: string } | { kind: 'invalid'; name: string } | { kind: 'none' };

export interface MechSpec {
  readonly cls: string;
  readonly type: string;
  /** Index into pods (≥0), or -1-k for badNetns[k], or undefined for no inodeURL. */
  readonly netns: number | undefined;
  readonly name: IfName;
  readonly extra: Readonly<Record<string, string>>;
}

export interface SegSpec {
  readonly name: string;
  readonly id: string;
  readonly token: string;
  readonly expiresInS: number | undefined;
}

export interface RequestSpec {
  /** `''`, an id from a small shared pool, or a random string. */
  readonly id: string;
  readonly networkService: string;
  readonly payload: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly path: { readonly index: number; readonly segments: readonly SegSpec[] } | undefined;
  readonly ip: { readonly src: readonly string[]; readonly dst: readonly string[]; readonly excluded: readonly string[] } | undefined;
  readonly mtu: number;
  readonly mechanism: MechSpec | undefined;
  readonly prefs: readonly MechSpec[];
  /** Client token expiry sent as metadata (seconds from now; negative: already expired; undefined: none). */
  readonly tokenExpiresInS: number | undefined;
}

/** How a re-Request differs from the connection the client got back. */
export type RerequestChange = 'same' | 'labels' | 'mechanism' | 'no-path' | 'bad-index' | 'other-id';

export type Op =
  | { readonly op: 'request'; readonly target: Target; readonly req: RequestSpec; readonly cancelAfterMs: number | undefined; readonly fromOtherPod: boolean }
  | { readonly op: 'rerequest'; readonly ref: number; readonly change: RerequestChange; readonly prefs: readonly MechSpec[] }
  | { readonly op: 'close'; readonly ref: number; readonly twice: boolean }
  | { readonly op: 'close-raw'; readonly target: Target; readonly req: RequestSpec }
  | { readonly op: 'raw'; readonly target: Target; readonly method: 'Request' | 'Close'; readonly bytes: Uint8Array; readonly mangle: 'garbage' | 'truncate' | 'flip' }
  | { readonly op: 'monitor'; readonly target: Target; readonly segments: readonly SegSpec[]; readonly services: readonly string[]; readonly readMs: number }
  | { readonly op: 'nse-register'; readonly target: RegistryTarget; readonly nse: NseSpec }
  | { readonly op: 'nse-unregister'; readonly target: RegistryTarget; readonly name: string }
  | { readonly op: 'nse-find'; readonly target: RegistryTarget; readonly name: string; readonly service: string; readonly watchMs: number | undefined }
  | { readonly op: 'ns-register'; readonly target: RegistryTarget; readonly ns: NsSpec }
  | { readonly op: 'ns-unregister'; readonly target: RegistryTarget; readonly name: string }
  | { readonly op: 'ns-find'; readonly target: RegistryTarget; readonly name: string; readonly watchMs: number | undefined };

export interface NseSpec {
  readonly name: string;
  readonly services: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
  /** 'nse' (the real NSE's URL), 'dead' (deadUrls[k]) or a literal (malformed) URL. */
  readonly url: { kind: 'nse' } | { kind: 'dead'; index: number } | { kind: 'literal'; url: string };
  readonly expiresInS: number | undefined;
}

export interface NsSpec {
  readonly name: string;
  readonly payload: string;
  readonly matches: ReadonlyArray<{ readonly source: Readonly<Record<string, string>>; readonly dest: Readonly<Record<string, string>>; readonly fallthrough: boolean }>;
}

export type Batch = readonly Op[];
export type Scenario = readonly Batch[];

/** Ids several operations of one run share, so re-Requests and collisions happen. */
export const SHARED_IDS = ['fz-1', 'fz-2', 'fz-3'] as const;
/** Interface names several connections may share when `sharedInterfaceNames` is on. */
export const SHARED_IFNAMES = ['nsm-1'] as const;
/** Interface names the data plane must refuse. */
export const INVALID_IFNAMES = ['', '.', '..', 'a/b', 'x y', 'toolongname12345', 'lo', 'ñame', 'a:b', '"q"', '-', ' nsm'];
/** Registry names the fuzz registers under (plus random strings). */
export const FUZZ_NAMES = ['fz-nse-1', 'fz-nse-2', 'fz-svc'] as const;

const weird = fc.string({ unit: 'grapheme', maxLength: 24 });
const long = fc.string({ minLength: 300, maxLength: 3000 });
const smallDict = fc.dictionary(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('app', 'nodeName', 'p2p')), fc.oneof(fc.string({ maxLength: 12 }), long), { maxKeys: 3 });

function idArb(): fc.Arbitrary<string> {
  return fc.oneof({ weight: 2, arbitrary: fc.constant('') }, { weight: 5, arbitrary: fc.constantFrom(...SHARED_IDS) }, { weight: 1, arbitrary: fc.uuid() }, { weight: 1, arbitrary: weird }, { weight: 1, arbitrary: long });
}

function serviceArb(world: FuzzWorld): fc.Arbitrary<string> {
  return fc.oneof({ weight: 8, arbitrary: fc.constant(world.service) }, { weight: 1, arbitrary: fc.constantFrom('', 'no-such-service', FUZZ_NAMES[2]) }, { weight: 1, arbitrary: fc.oneof(weird, long) });
}

function netnsArb(world: FuzzWorld): fc.Arbitrary<number | undefined> {
  const pods = fc.integer({ min: 0, max: world.pods.length - 1 });
  const bad = world.badNetns.length > 0 ? fc.integer({ min: -world.badNetns.length, max: -1 }) : fc.constant(undefined);
  return fc.oneof({ weight: 8, arbitrary: pods }, { weight: 2, arbitrary: bad }, { weight: 1, arbitrary: fc.constant(undefined) });
}

function ifNameArb(o: FuzzOptions): fc.Arbitrary<IfName> {
  const choices: Array<fc.WeightedArbitrary<IfName>> = [
    { weight: 6, arbitrary: fc.constant({ kind: 'fresh' } as IfName) },
    { weight: 2, arbitrary: fc.constantFrom(...INVALID_IFNAMES).map((name): IfName => ({ kind: 'invalid', name })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'none' } as IfName) },
  ];
  if (o.sharedInterfaceNames) choices.push({ weight: 12, arbitrary: fc.constantFrom(...SHARED_IFNAMES).map((name): IfName => ({ kind: 'shared', name })) });
  return fc.oneof(...choices);
}

export function mechArb(world: FuzzWorld, o: FuzzOptions): fc.Arbitrary<MechSpec> {
  return fc.record({
    cls: fc.oneof({ weight: 8, arbitrary: fc.constant(CLS_LOCAL) }, { weight: 1, arbitrary: fc.constantFrom(CLS_REMOTE, '', 'local') }, { weight: 1, arbitrary: weird }),
    type: fc.oneof({ weight: 8, arbitrary: fc.constant(MECH_KERNEL) }, { weight: 1, arbitrary: fc.constantFrom(MECH_NOOP, 'VXLAN', 'kernel', '') }, { weight: 1, arbitrary: weird }),
    netns: netnsArb(world),
    name: ifNameArb(o),
    extra: fc.oneof({ weight: 5, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: smallDict }),
  });
}

function segArb(world: FuzzWorld): fc.Arbitrary<SegSpec> {
  const { nsmgr, forwarder, nse } = world.hops;
  return fc.record({
    name: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('fz-client', nsmgr, forwarder, nse) }, { weight: 1, arbitrary: fc.oneof(fc.constant(''), weird, long) }),
    id: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...SHARED_IDS) }, { weight: 1, arbitrary: fc.oneof(fc.constant(''), fc.uuid(), weird) }),
    token: fc.oneof({ weight: 4, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.oneof(weird, long) }),
    expiresInS: fc.option(fc.integer({ min: -3600, max: 10 ** 9 }), { nil: undefined }),
  });
}

const addrArb = fc.oneof(
  fc.constantFrom('10.60.0.1/32', '10.60.0.2/32', '10.60.0.7/32', '10.60.0.0/29', '192.0.2.1/32', '::1/128', 'fd00::1/64'),
  fc.constantFrom('', 'not-an-ip', '10.60.0.1/33', '300.1.1.1/32', '10.60.0.1', '10.60.0.1/-1'),
  weird,
);

export function requestArb(world: FuzzWorld, o: FuzzOptions): fc.Arbitrary<RequestSpec> {
  return fc.record({
    id: idArb(),
    networkService: serviceArb(world),
    payload: fc.oneof({ weight: 4, arbitrary: fc.constant('') }, { weight: 2, arbitrary: fc.constantFrom(PAYLOAD_ETHERNET, PAYLOAD_IP) }, { weight: 1, arbitrary: weird }),
    labels: fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, { weight: 1, arbitrary: smallDict }),
    path: fc.oneof(
      { weight: 6, arbitrary: fc.constant(undefined) },
      { weight: 2, arbitrary: fc.record({ index: fc.oneof(fc.nat(4), fc.constant(2 ** 32 - 1)), segments: fc.array(segArb(world), { maxLength: 5 }) }) },
    ),
    ip: fc.oneof(
      { weight: 5, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: fc.record({ src: fc.array(addrArb, { maxLength: 3 }), dst: fc.array(addrArb, { maxLength: 3 }), excluded: fc.array(addrArb, { maxLength: 3 }) }) },
    ),
    mtu: fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(1, 68, 1280, 9000, 65535, 65536, 2 ** 32 - 1) }),
    mechanism: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: mechArb(world, o) }),
    prefs: fc.oneof(
      { weight: 8, arbitrary: mechArb(world, o).map((m) => [m]) },
      { weight: 1, arbitrary: fc.constant([]) },
      { weight: 1, arbitrary: fc.array(mechArb(world, o), { minLength: 2, maxLength: 4 }) },
    ),
    tokenExpiresInS: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.integer({ min: -60, max: 3600 }) }),
  });
}

/** A well-formed first Request for the service from pod `pod` (what a correct client sends). */
export function validRequest(world: FuzzWorld, pod: number): RequestSpec {
  return {
    id: '',
    networkService: world.service,
    payload: '',
    labels: {},
    path: undefined,
    ip: undefined,
    mtu: 0,
    mechanism: undefined,
    prefs: [{ cls: CLS_LOCAL, type: MECH_KERNEL, netns: pod, name: { kind: 'fresh' }, extra: {} }],
    tokenExpiresInS: undefined,
  };
}

/** A well-formed first Request from one of the pods, with labels and a payload now and then. */
function wellFormedArb(world: FuzzWorld): fc.Arbitrary<RequestSpec> {
  return fc.record({ pod: fc.nat(world.pods.length - 1), labels: fc.oneof(fc.constant({}), smallDict), payload: fc.constantFrom('', PAYLOAD_ETHERNET) }).map(({ pod, labels, payload }) => ({
    ...validRequest(world, pod),
    labels,
    payload,
  }));
}

function registryNameArb(world: FuzzWorld): fc.Arbitrary<string> {
  return fc.oneof({ weight: 5, arbitrary: fc.constantFrom(...FUZZ_NAMES) }, { weight: 1, arbitrary: fc.oneof(fc.constant(''), fc.constant(' '), weird, long) }).filter((n) => !world.liveNames.includes(n));
}

function nseArb(world: FuzzWorld): fc.Arbitrary<NseSpec> {
  return fc.record({
    name: registryNameArb(world),
    services: fc.array(fc.oneof(fc.constant(world.service), fc.constantFrom(...FUZZ_NAMES), weird), { maxLength: 3 }),
    labels: smallDict,
    url: fc.oneof(
      { weight: 2, arbitrary: fc.constant({ kind: 'nse' } as const) },
      { weight: 3, arbitrary: fc.nat(world.deadUrls.length - 1).map((index) => ({ kind: 'dead', index }) as const) },
      { weight: 2, arbitrary: fc.oneof(fc.constantFrom('', 'http://x', 'unix://', 'tcp://', 'tcp://:0', 'unix://relative/x.sock', 'tcp://[::1', 'tcp://h:99999'), weird).map((url) => ({ kind: 'literal', url }) as const) },
    ),
    expiresInS: fc.option(fc.integer({ min: -3600, max: 10 ** 9 }), { nil: undefined }),
  });
}

function nsArb(world: FuzzWorld): fc.Arbitrary<NsSpec> {
  return fc.record({
    name: registryNameArb(world),
    payload: fc.oneof(fc.constantFrom('', PAYLOAD_ETHERNET, PAYLOAD_IP), weird),
    matches: fc.array(fc.record({ source: smallDict, dest: smallDict, fallthrough: fc.boolean() }), { maxLength: 3 }),
  });
}

const target = fc.oneof({ weight: 6, arbitrary: fc.constant<Target>('nsmgr') }, { weight: 1, arbitrary: fc.constantFrom<Target>('forwarder', 'nse') });
const registryTarget = fc.constantFrom<RegistryTarget>('registry', 'nsmgr');
const watchMs = fc.option(fc.integer({ min: 0, max: 150 }), { nil: undefined });

/** Connection operations: Requests, re-Requests, Closes, raw bytes, monitor streams. */
export function connectionOpArb(world: FuzzWorld, o: FuzzOptions): fc.Arbitrary<Op> {
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({
        op: fc.constant('request' as const),
        target,
        req: fc.oneof(requestArb(world, o), wellFormedArb(world)),
        cancelAfterMs: fc.oneof({ weight: 5, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 80 }) }),
        fromOtherPod: fc.oneof({ weight: 7, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant('rerequest' as const),
        ref: fc.nat(20),
        change: fc.constantFrom<RerequestChange>('same', 'same', 'labels', 'mechanism', 'bad-index', 'other-id', ...(o.pathlessRerequest ? (['no-path', 'no-path'] as const) : [])),
        prefs: fc.array(mechArb(world, o), { minLength: 1, maxLength: 1 }),
      }),
    },
    { weight: 4, arbitrary: fc.record({ op: fc.constant('close' as const), ref: fc.nat(20), twice: fc.boolean() }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('close-raw' as const), target, req: requestArb(world, o) }) },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant('raw' as const),
        target,
        method: fc.constantFrom('Request' as const, 'Close' as const),
        bytes: fc.uint8Array({ maxLength: 200 }),
        mangle: fc.constantFrom('garbage' as const, 'truncate' as const, 'flip' as const),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant('monitor' as const),
        target,
        segments: fc.array(segArb(world), { maxLength: 2 }),
        services: fc.array(fc.oneof(fc.constant(world.service), weird), { maxLength: 2 }),
        readMs: fc.integer({ min: 0, max: 100 }),
      }),
    },
  );
}

/** Registry operations on NSEs and NetworkServices, at the registry or through nsmgr. */
export function registryOpArb(world: FuzzWorld): fc.Arbitrary<Op> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant('nse-register' as const), target: registryTarget, nse: nseArb(world) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('nse-unregister' as const), target: registryTarget, name: registryNameArb(world) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant('nse-find' as const), target: registryTarget, name: fc.oneof(fc.constant(''), registryNameArb(world)), service: fc.oneof(fc.constant(''), fc.constant(world.service), weird), watchMs }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant('ns-register' as const), target: registryTarget, ns: nsArb(world) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('ns-unregister' as const), target: registryTarget, name: registryNameArb(world) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('ns-find' as const), target: registryTarget, name: fc.oneof(fc.constant(''), registryNameArb(world)), watchMs }) },
  );
}

/**
 * A run: 1–`maxBatches` batches of 1–3 operations each (mostly one). The shared ids of a Request (its
 * connection id, its path's segment ids) are made unique per operation unless an option asks for
 * collisions: per batch with `concurrentSameId` (concurrent first Requests with one id, but no Request that
 * meets an earlier connection), not at all with `pathlessRerequest` (a Request with the id of an existing
 * connection and without its path is a pathless re-Request).
 */
export function scenarioArb(op: fc.Arbitrary<Op>, o: FuzzOptions, world?: FuzzWorld, maxBatches = 8): fc.Arbitrary<Scenario> {
  const kinds: Array<fc.WeightedArbitrary<Batch>> = [
    { weight: 4, arbitrary: fc.array(op, { minLength: 1, maxLength: 1 }) },
    { weight: 1, arbitrary: fc.array(op, { minLength: 2, maxLength: 3 }) },
  ];
  if (o.concurrentSameId && world) kinds.push({ weight: 2, arbitrary: burstArb(world, o) });
  const batches = fc.array(fc.oneof(...kinds), { minLength: 1, maxLength: maxBatches });
  if (o.pathlessRerequest) return batches;
  return batches.map((s) => s.map((b, bi) => b.map((x, oi) => (x.op === 'request' ? { ...x, req: scopeIds(x.req, o.concurrentSameId ? `${bi}` : `${bi}.${oi}`) } : x))));
}

/** 2–4 first Requests to nsmgr with one connection id, sent at once (some cancelled). */
function burstArb(world: FuzzWorld, o: FuzzOptions): fc.Arbitrary<Batch> {
  const one = fc.record({ req: requestArb(world, o), cancelAfterMs: fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 80 }) }) });
  return fc.tuple(fc.constantFrom(...SHARED_IDS), fc.array(one, { minLength: 2, maxLength: 4 })).map(([id, reqs]) =>
    reqs.map((r): Op => ({ op: 'request', target: 'nsmgr', req: { ...r.req, id, path: undefined }, cancelAfterMs: r.cancelAfterMs, fromOtherPod: false })),
  );
}

function scopeIds(r: RequestSpec, scope: string): RequestSpec {
  const scoped = (id: string) => ((SHARED_IDS as readonly string[]).includes(id) ? `${id}.${scope}` : id);
  return { ...r, id: scoped(r.id), path: r.path ? { ...r.path, segments: r.path.segments.map((g) => ({ ...g, id: scoped(g.id) })) } : undefined };
}

/** The raw bytes an operation sends: random garbage, or a valid encoding truncated or with a bit flipped. */
export function mangle(valid: Uint8Array, op: { readonly bytes: Uint8Array; readonly mangle: 'garbage' | 'truncate' | 'flip' }): Uint8Array {
  if (op.mangle === 'garbage' || valid.length === 0) return op.bytes;
  const at = op.bytes.length > 0 ? op.bytes[0]! % valid.length : 0;
  if (op.mangle === 'truncate') return valid.subarray(0, at);
  const out = Uint8Array.from(valid);
  out[at] = out[at]! ^ (1 << ((op.bytes[1] ?? 0) % 8));
  return out;
}

export { PARAM_INODE_URL, PARAM_NAME };
