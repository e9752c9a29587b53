/**
 * Runs a fuzz {@link Scenario} against a mesh over real gRPC, as a client would (from the outside: only
 * URLs, no access to the servers' state), and keeps what it needs to clean up after itself: the
 * connections it got back, which Requests it abandoned (cancelled, or no answer: the server may hold a
 * connection the client never learned of), and the registrations it made. `drain()` closes and
 * unregisters all of it; `recover()` closes what the servers still show in MonitorConnections (what a
 * client that lost its answers would do). Every call has a deadline; no background work outlives a call.
 */
import { Client as GrpcClient, Metadata as GrpcMetadata, credentials } from '@grpc/grpc-js';
import { ClientError, Metadata, Status, createChannel, createClient, type Channel } from 'nice-grpc';
import { CLS_LOCAL, MECH_KERNEL, MD_CLIENT_TOKEN, MD_CLIENT_TOKEN_EXPIRES, PARAM_INODE_URL, PARAM_NAME } from '../../api/constants.js';
import { Connection, ConnectionEventType, MonitorConnectionDefinition, type Mechanism, type PathSegment } from '../../api/gen/connection.js';
import { NetworkServiceDefinition, NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { NetworkService, NetworkServiceEndpoint, NetworkServiceEndpointRegistryDefinition, NetworkServiceRegistryDefinition } from '../../api/gen/registry.js';
import { HealthCheckResponse_ServingStatus, HealthDefinition } from '../../api/gen/health.js';
import { grpcTarget } from '../../core/transport.js';
import { mangle, type FuzzWorld, type MechSpec, type Op, type RegistryTarget, type RequestSpec, type Scenario, type SegSpec, type Target } from './arbitraries.js';

/** Deadline of every unary call the driver makes (a server that does not answer in time is a finding). */
export const CALL_TIMEOUT_MS = 8_000;

const DEBUG = process.env.NSM_FUZZ_DEBUG === '1';

export interface FuzzUrls {
  readonly registry: string;
  readonly nsmgr: string;
  readonly forwarder: string;
  readonly nse: string;
  /**
   * nsmgr as a client inside each pod reaches it (index: `FuzzWorld.pods`), when the mesh binds a kernel
   * mechanism to its caller's netns: a Request naming pod k's netns is sent from pod k (now and then, on
   * purpose, from another pod: it must be refused). Default: `nsmgr` for every pod.
   */
  readonly nsmgrFrom?: readonly string[];
}

interface Held {
  readonly target: Target;
  /** The URL it was requested through (its Close goes the same way). */
  readonly url: string;
  /** Index in `FuzzWorld.pods` of the pod it was requested from (nsmgr only). */
  readonly from: number | undefined;
  conn: Connection;
  open: boolean;
}

/** Index in `world.pods` of the first pod a request's KERNEL mechanisms name, if any. */
function namedPod(req: NetworkServiceRequest, world: FuzzWorld): number | undefined {
  for (const m of [req.connection?.mechanism, ...req.mechanismPreferences]) {
    if (m?.type !== MECH_KERNEL) continue;
    const i = world.pods.indexOf(m.parameters?.[PARAM_INODE_URL] ?? '');
    if (i >= 0) return i;
  }
  return undefined;
}

const at = (s: number | undefined): Date | undefined => (s === undefined ? undefined : new Date(Date.now() + s * 1000));

function mechanism(world: FuzzWorld, m: MechSpec, freshName: () => string): Mechanism {
  const parameters: Record<string, string> = { ...m.extra };
  if (m.netns !== undefined) parameters[PARAM_INODE_URL] = m.netns >= 0 ? world.pods[m.netns]! : world.badNetns[-1 - m.netns]!;
  if (m.name.kind === 'fresh') parameters[PARAM_NAME] = freshName();
  else if (m.name.kind !== 'none') parameters[PARAM_NAME] = m.name.name;
  return { cls: m.cls, type: m.type, parameters };
}

function segment(s: SegSpec): PathSegment {
  return { name: s.name, id: s.id, token: s.token, expires: at(s.expiresInS), metrics: {} };
}

/** The wire Request a {@link RequestSpec} stands for. */
export function buildRequest(world: FuzzWorld, r: RequestSpec, freshName: () => string): NetworkServiceRequest {
  const connection = Connection.fromPartial({
    id: r.id,
    networkService: r.networkService,
    payload: r.payload,
    labels: { ...r.labels },
    path: r.path ? { index: r.path.index, pathSegments: r.path.segments.map(segment) } : undefined,
    context: {
      extraContext: {},
      MTU: r.mtu,
      ipContext: r.ip ? { srcIpAddrs: [...r.ip.src], dstIpAddrs: [...r.ip.dst], excludedPrefixes: [...r.ip.excluded] } : undefined,
    },
    mechanism: r.mechanism ? mechanism(world, r.mechanism, freshName) : undefined,
  });
  return { connection, mechanismPreferences: r.prefs.map((m) => mechanism(world, m, freshName)) };
}

function tokenMetadata(expiresInS: number | undefined): Metadata {
  const md = Metadata();
  if (expiresInS !== undefined) {
    md.set(MD_CLIENT_TOKEN, 'fuzz-token');
    md.set(MD_CLIENT_TOKEN_EXPIRES, new Date(Date.now() + expiresInS * 1000).toISOString());
  }
  return md;
}

const codeOf = (err: unknown): string => (err instanceof ClientError ? Status[err.code] : err instanceof Error ? err.name : 'thrown');

export class FuzzDriver {
  readonly #world: FuzzWorld;
  readonly #urls: FuzzUrls;
  readonly #channels = new Map<string, Channel>();
  readonly #raw = new Map<string, GrpcClient>();
  readonly #held: Held[] = [];
  readonly #nses = new Map<string, Set<RegistryTarget>>();
  readonly #nss = new Map<string, Set<RegistryTarget>>();
  #names = 0;
  /** Requests the client gave up on (cancelled or unanswered): the server may hold their connections. */
  abandoned = 0;
  /** Safety violations seen in answers (e.g. a Request for another pod's netns accepted). */
  readonly violations: string[] = [];
  /** How often each outcome (`OK` or a status name) was seen, per operation kind. */
  readonly outcomes = new Map<string, number>();

  constructor(world: FuzzWorld, urls: FuzzUrls, readonly runTag: string) {
    this.#world = world;
    this.#urls = urls;
  }

  /** A valid interface name no other connection of this driver uses. */
  freshName = (): string => `fz${this.runTag}${(this.#names++).toString(36)}`.slice(0, 15);

  /** One channel per URL; a connection attempt gets a second (the components' 50 ms is for dialling peers that are up). */
  #channel(url: string): Channel {
    let ch = this.#channels.get(url);
    if (!ch) {
      ch = createChannel(grpcTarget(url), undefined, { 'grpc.initial_reconnect_backoff_ms': 1000, 'grpc.min_reconnect_backoff_ms': 1000, 'grpc.enable_retries': 0 });
      this.#channels.set(url, ch);
    }
    return ch;
  }

  #count(kind: string, outcome: string): void {
    const k = `${kind} ${outcome}`;
    this.outcomes.set(k, (this.outcomes.get(k) ?? 0) + 1);
  }

  async run(s: Scenario): Promise<void> {
    for (const batch of s) await Promise.all(batch.map((op) => this.#op(op)));
  }

  async #op(op: Op): Promise<void> {
    const cancels = op.op === 'request' && op.cancelAfterMs !== undefined;
    try {
      if (DEBUG) console.log(`# fuzz op ${JSON.stringify(op, (_k, v: unknown) => (typeof v === 'string' && v.length > 60 ? `${v.slice(0, 60)}…(${v.length})` : v))}`);
      await this.#dispatch(op);
      this.#count(op.op, 'OK');
    } catch (err) {
      this.#count(op.op, codeOf(err));
      if (err instanceof ClientError) return;
      const aborted = (err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError';
      if (cancels && aborted) return;
      if (aborted) throw new Error(`${op.op} to ${'target' in op ? op.target : '?'} got no answer within ${CALL_TIMEOUT_MS} ms`, { cause: err });
      throw err;
    } finally {
      if (DEBUG) console.log(`# fuzz op ${op.op} done`);
    }
  }

  async #dispatch(op: Op): Promise<void> {
    switch (op.op) {
      case 'request':
        return this.#request(op.target, buildRequest(this.#world, op.req, this.freshName), op.req.tokenExpiresInS, op.cancelAfterMs, undefined, op.fromOtherPod);
      case 'rerequest':
        return this.#rerequest(op);
      case 'close':
        return this.#closeRef(op.ref, op.twice);
      case 'close-raw':
        return this.#close(this.#urls[op.target], buildRequest(this.#world, op.req, this.freshName).connection!);
      case 'raw':
        return this.#rawCall(op);
      case 'monitor':
        return this.#monitor(op.target, op.segments.map(segment), op.services, op.readMs);
      default:
        return this.#registryOp(op);
    }
  }

  /** The pod a Request to nsmgr is sent from: the one it names, or (`fromOther`) another one. */
  #fromPod(req: NetworkServiceRequest, fromOther: boolean): number | undefined {
    if (!this.#urls.nsmgrFrom) return undefined;
    const named = namedPod(req, this.#world) ?? 0;
    if (!fromOther) return named;
    const pods = this.#world.pods.length;
    for (let k = 1; k < pods; k++) if (!this.#samePod(named, (named + k) % pods)) return (named + k) % pods;
    return named;
  }

  #samePod(a: number, b: number): boolean {
    return (this.#world.podOf?.[a] ?? a) === (this.#world.podOf?.[b] ?? b);
  }

  #urlFor(target: Target, from: number | undefined): string {
    return target === 'nsmgr' && from !== undefined && this.#urls.nsmgrFrom ? this.#urls.nsmgrFrom[this.#world.podOf?.[from] ?? from]! : this.#urls[target];
  }

  async #request(target: Target, req: NetworkServiceRequest, tokenExpiresInS?: number, cancelAfterMs?: number, held?: Held, fromOther = false): Promise<void> {
    const signal = AbortSignal.timeout(cancelAfterMs ?? CALL_TIMEOUT_MS);
    const from = held ? held.from : target === 'nsmgr' ? this.#fromPod(req, fromOther) : undefined;
    const url = held?.url ?? this.#urlFor(target, from);
    try {
      const conn = await createClient(NetworkServiceDefinition, this.#channel(url)).request(req, { signal, metadata: tokenMetadata(tokenExpiresInS) });
      const named = namedPod(req, this.#world);
      if (this.#urls.nsmgrFrom && target === 'nsmgr' && from !== undefined && named !== undefined && !this.#samePod(from, named)) {
        this.violations.push(`nsmgr accepted a Request from pod ${this.#world.pods[from]} naming another pod's netns ${this.#world.pods[named]} (connection ${conn.id})`);
      }
      if (held) {
        held.conn = conn;
        held.open = true;
      } else this.#held.push({ target, url, from, conn, open: true });
    } catch (err) {
      if (signal.aborted || (err instanceof ClientError && (err.code === Status.CANCELLED || err.code === Status.DEADLINE_EXCEEDED || err.code === Status.UNAVAILABLE))) this.abandoned++;
      throw err;
    }
  }

  async #rerequest(op: Extract<Op, { op: 'rerequest' }>): Promise<void> {
    if (this.#held.length === 0) return;
    const h = this.#held[op.ref % this.#held.length]!;
    const conn = Connection.fromPartial(h.conn);
    const prefs = h.conn.mechanism ? [h.conn.mechanism] : [];
    switch (op.change) {
      case 'labels':
        conn.labels = { ...conn.labels, fuzz: String(op.ref) };
        break;
      case 'mechanism':
        prefs.splice(0, prefs.length, ...op.prefs.map((m) => mechanism(this.#world, m, this.freshName)));
        conn.mechanism = undefined;
        break;
      case 'no-path':
        conn.path = undefined;
        break;
      case 'bad-index':
        if (conn.path) conn.path.index = conn.path.pathSegments.length + 3;
        break;
      case 'other-id':
        conn.id = `${conn.id}-x`;
        break;
    }
    await this.#request(h.target, { connection: conn, mechanismPreferences: prefs }, undefined, undefined, h);
  }

  async #closeRef(ref: number, twice: boolean): Promise<void> {
    if (this.#held.length === 0) return;
    const h = this.#held[ref % this.#held.length]!;
    await this.#close(h.url, h.conn);
    h.open = false;
    if (twice) await this.#close(h.url, h.conn);
  }

  async #close(url: string, conn: Connection): Promise<void> {
    await createClient(NetworkServiceDefinition, this.#channel(url)).close(conn, { signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
  }

  /** Where a Close of a connection a server shows must come from: the pod its kernel mechanism names. */
  #closeUrl(target: Target, c: Connection): string {
    const pod = c.mechanism ? namedPod({ connection: c, mechanismPreferences: [] }, this.#world) : undefined;
    return this.#urlFor(target, pod);
  }

  #rawClient(target: Target): GrpcClient {
    let c = this.#raw.get(target);
    if (!c) {
      c = new GrpcClient(grpcTarget(this.#urls[target]), credentials.createInsecure());
      this.#raw.set(target, c);
    }
    return c;
  }

  async #rawCall(op: Extract<Op, { op: 'raw' }>): Promise<void> {
    const valid = op.method === 'Request'
      ? NetworkServiceRequest.encode(buildRequest(this.#world, { id: 'fz-raw', networkService: this.#world.service, payload: '', labels: {}, path: undefined, ip: undefined, mtu: 0, mechanism: undefined, prefs: [{ cls: CLS_LOCAL, type: 'KERNEL', netns: undefined, name: { kind: 'fresh' }, extra: {} }], tokenExpiresInS: undefined }, this.freshName)).finish()
      : Connection.encode(Connection.fromPartial({ id: 'fz-raw' })).finish();
    const bytes = mangle(valid, op);
    const client = this.#rawClient(op.target);
    await new Promise<void>((resolve, reject) => {
      client.makeUnaryRequest(
        `/${NetworkServiceDefinition.fullName}/${op.method}`,
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => b,
        bytes,
        new GrpcMetadata(),
        { deadline: Date.now() + CALL_TIMEOUT_MS },
        (err, res) => {
          if (!err) {
            // A Request that decoded may have set up a connection: keep it to close it.
            if (op.method === 'Request' && res) this.#held.push({ target: op.target, url: this.#urls[op.target], from: undefined, conn: Connection.decode(res), open: true });
            return resolve();
          }
          if (err.code === Status.DEADLINE_EXCEEDED || err.code === Status.UNAVAILABLE) this.abandoned++;
          reject(new ClientError(`/networkservice.NetworkService/${op.method}`, err.code, err.details));
        },
      );
    });
  }

  async #monitor(target: Target, segments: PathSegment[], services: readonly string[], readMs: number): Promise<void> {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), readMs);
    try {
      const client = createClient(MonitorConnectionDefinition, this.#channel(this.#urls[target]));
      for await (const ev of client.monitorConnections({ pathSegments: segments, networkServices: [...services] }, { signal: ac.signal })) {
        if (ev.type === undefined) throw new Error('monitor event without a type');
      }
    } catch (err) {
      if (!ac.signal.aborted) throw err;
    } finally {
      clearTimeout(t);
    }
  }

  #registryUrl(t: RegistryTarget): string {
    return t === 'registry' ? this.#urls.registry : this.#urls.nsmgr;
  }

  async #registryOp(op: Exclude<Op, { op: 'request' | 'rerequest' | 'close' | 'close-raw' | 'raw' | 'monitor' }>): Promise<void> {
    const ch = this.#channel(this.#registryUrl(op.target));
    const nse = createClient(NetworkServiceEndpointRegistryDefinition, ch);
    const ns = createClient(NetworkServiceRegistryDefinition, ch);
    const signal = AbortSignal.timeout(CALL_TIMEOUT_MS);
    switch (op.op) {
      case 'nse-register': {
        const s = op.nse;
        const url = s.url.kind === 'nse' ? this.#world.nseUrl : s.url.kind === 'dead' ? this.#world.deadUrls[s.url.index]! : s.url.url;
        remember(this.#nses, s.name, op.target);
        await nse.register(
          NetworkServiceEndpoint.fromPartial({
            name: s.name,
            networkServiceNames: [...s.services],
            networkServiceLabels: Object.fromEntries(s.services.map((n) => [n, { labels: { ...s.labels } }])),
            url,
            expirationTime: at(s.expiresInS),
          }),
          { signal },
        );
        return;
      }
      case 'nse-unregister':
        await nse.unregister(NetworkServiceEndpoint.fromPartial({ name: op.name }), { signal });
        return;
      case 'ns-register':
        remember(this.#nss, op.ns.name, op.target);
        await ns.register(
          NetworkService.fromPartial({
            name: op.ns.name,
            payload: op.ns.payload,
            matches: op.ns.matches.map((m) => ({ sourceSelector: { ...m.source }, routes: [{ destinationSelector: { ...m.dest }, weight: 1 }], fallthrough: m.fallthrough })),
          }),
          { signal },
        );
        return;
      case 'ns-unregister':
        await ns.unregister(NetworkService.fromPartial({ name: op.name }), { signal });
        return;
      case 'nse-find':
        return drainStream(op.watchMs, (s) => nse.find({ networkServiceEndpoint: NetworkServiceEndpoint.fromPartial({ name: op.name, networkServiceNames: op.service ? [op.service] : [] }), watch: op.watchMs !== undefined }, { signal: s }));
      case 'ns-find':
        return drainStream(op.watchMs, (s) => ns.find({ networkService: NetworkService.fromPartial({ name: op.name }), watch: op.watchMs !== undefined }, { signal: s }));
    }
  }

  /** Closes every connection the client holds open, then unregisters everything it registered. */
  async drain(): Promise<string[]> {
    const problems: string[] = [];
    for (const h of [...this.#held].reverse()) {
      if (!h.open) continue;
      try {
        await this.#close(h.url, h.conn);
        h.open = false;
      } catch (err) {
        problems.push(`Close of ${h.target} connection ${h.conn.id.slice(0, 40)} failed: ${codeOf(err)} ${(err as Error).message.slice(0, 200)}`);
      }
    }
    this.#held.length = 0;
    const signal = () => AbortSignal.timeout(CALL_TIMEOUT_MS);
    for (const [names, def] of [[this.#nses, NetworkServiceEndpointRegistryDefinition], [this.#nss, NetworkServiceRegistryDefinition]] as const) {
      for (const [name, targets] of names) {
        for (const t of new Set<RegistryTarget>([...targets, 'registry'])) {
          const c = createClient(def, this.#channel(this.#registryUrl(t)));
          await c.unregister({ name } as never, { signal: signal() }).catch(() => undefined);
        }
      }
      names.clear();
    }
    return problems;
  }

  /**
   * Closes every connection the servers still show (nsmgr first, then forwarder, then NSE), again after
   * `settleMs` until a round finds none: an abandoned Request may still be at work on the server and
   * establish its connection after the first round. Returns how many it closed.
   */
  async recover(settleMs: number, rounds = 10): Promise<number> {
    let n = 0;
    let quiet = 0;
    for (let i = 0; i < rounds && quiet < 2; i++) {
      let found = 0;
      for (const target of ['nsmgr', 'forwarder', 'nse'] as const) {
        for (const c of await this.connections(target)) {
          await this.#close(this.#closeUrl(target, c), asFromPreviousHop(c)).catch(() => undefined);
          found++;
        }
      }
      n += found;
      quiet = found === 0 ? quiet + 1 : 0;
      if (quiet < 2) await new Promise((r) => setTimeout(r, settleMs));
    }
    return n;
  }

  /** The connections a server's MonitorConnections shows (its INITIAL_STATE_TRANSFER). */
  async connections(target: Target): Promise<Connection[]> {
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), CALL_TIMEOUT_MS);
    try {
      const client = createClient(MonitorConnectionDefinition, this.#channel(this.#urls[target]));
      for await (const ev of client.monitorConnections({ pathSegments: [], networkServices: [] }, { signal: ac.signal })) {
        if (ev.type === ConnectionEventType.INITIAL_STATE_TRANSFER) return Object.values(ev.connections);
      }
      throw new Error(`${target}: monitor stream ended without INITIAL_STATE_TRANSFER`);
    } finally {
      clearTimeout(t);
      ac.abort();
    }
  }

  /** Throws unless the server at `url` answers grpc.health.v1 SERVING. */
  async health(name: string, url: string): Promise<void> {
    const res = await createClient(HealthDefinition, this.#channel(url)).check({ service: '' }, { signal: AbortSignal.timeout(CALL_TIMEOUT_MS) });
    if (res.status !== HealthCheckResponse_ServingStatus.SERVING) throw new Error(`${name} answers health ${HealthCheckResponse_ServingStatus[res.status]}`);
  }

  /** Names the registry at `url` holds: NSEs and NetworkServices (a Find without watch). */
  async registryNames(url: string): Promise<{ nses: string[]; nss: string[] }> {
    const ch = this.#channel(url);
    const nses: string[] = [];
    const nss: string[] = [];
    const signal = AbortSignal.timeout(CALL_TIMEOUT_MS);
    for await (const r of createClient(NetworkServiceEndpointRegistryDefinition, ch).find({ networkServiceEndpoint: NetworkServiceEndpoint.fromPartial({}), watch: false }, { signal })) nses.push(r.networkServiceEndpoint?.name ?? '');
    for await (const r of createClient(NetworkServiceRegistryDefinition, ch).find({ networkService: NetworkService.fromPartial({}), watch: false }, { signal })) nss.push(r.networkService?.name ?? '');
    return { nses: nses.sort(), nss: nss.sort() };
  }

  /**
   * How many valid connections the NSE still gives (until its pool is exhausted), from pod `pod` through
   * nsmgr; all closed again before returning. `max` bounds the probe.
   */
  async capacity(request: (fresh: () => string) => NetworkServiceRequest, max: number): Promise<{ count: number; stop: string }> {
    const got: Connection[] = [];
    let stop = `reached the probe bound ${max}`;
    try {
      while (got.length < max) {
        try {
          const req = request(this.freshName);
          const url = this.#urlFor('nsmgr', this.#fromPod(req, false));
          got.push(await createClient(NetworkServiceDefinition, this.#channel(url)).request(req, { signal: AbortSignal.timeout(CALL_TIMEOUT_MS) }));
        } catch (err) {
          stop = `${codeOf(err)}: ${(err as Error).message.slice(0, 300)}`;
          break;
        }
      }
    } finally {
      for (const c of got.reverse()) await this.#close(this.#closeUrl('nsmgr', c), c).catch(() => undefined);
    }
    return { count: got.length, stop };
  }

  close(): void {
    for (const c of this.#raw.values()) c.close();
    this.#raw.clear();
    for (const ch of this.#channels.values()) ch.close();
    this.#channels.clear();
  }
}

/**
 * A connection as a server's monitor shows it (path index at that server), as the previous hop sends it:
 * index and id of the previous segment, or of the server's own segment when it is the first.
 */
export function asFromPreviousHop(c: Connection): Connection {
  const segs = c.path?.pathSegments ?? [];
  const own = c.path?.index ?? 0;
  const index = own > 0 ? own - 1 : 0;
  return Connection.fromPartial({ ...c, id: segs[index]?.id ?? c.id, path: { index, pathSegments: segs } });
}

function remember(m: Map<string, Set<RegistryTarget>>, name: string, t: RegistryTarget): void {
  let s = m.get(name);
  if (!s) m.set(name, (s = new Set()));
  s.add(t);
}

async function drainStream<T>(watchMs: number | undefined, open: (signal: AbortSignal) => AsyncIterable<T>): Promise<void> {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), watchMs ?? CALL_TIMEOUT_MS);
  try {
    for await (const _ of open(ac.signal)) {
      /* read everything */
    }
  } catch (err) {
    if (!ac.signal.aborted) throw err;
  } finally {
    clearTimeout(t);
  }
}
