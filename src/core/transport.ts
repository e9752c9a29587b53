/**
 * gRPC transport: NSM URLs (`unix:///abs/path`, `tcp://host:port`, or a bare `host:port` target), servers
 * that always serve `grpc.health.v1.Health`, and a channel pool for clients. A stale unix socket file is
 * replaced at start (a live one is refused, naming it) and removed on a clean stop. A server never creates
 * directories: a unix socket's directory must exist (InvalidArgumentError naming the field otherwise).
 *
 * Every server and pool is given its transport security: mTLS from an X509Source or explicitly INSECURE
 * (security/tls.ts); a TLS server never accepts plaintext and a TLS channel never falls back to it.
 */
import { existsSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { connectivityState as ConnectivityState } from '@grpc/grpc-js';
import { createChannel, createClient as niceCreateClient, type Channel, type CompatServiceDefinition } from 'nice-grpc';
import { channelCredentials, MtlsChannelCredentials, type PeerIdentity, type TransportSecurity } from '../security/tls.js';
import {
  HealthCheckResponse_ServingStatus,
  HealthDefinition,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from '../api/gen/health.js';
import { DeadlineExceededError, InvalidArgumentError, UnavailableError } from './errors.js';
import { PeerAwareServer } from './grpc-server.js';
import { AsyncQueue } from './queue.js';

export type ParsedUrl =
  | { readonly kind: 'unix'; readonly path: string; readonly url: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly url: string };

/** Parses an NSM URL. `field` names the setting in errors. */
export function parseUrl(url: string, field = 'url'): ParsedUrl {
  const u = url.trim();
  if (u.startsWith('unix://')) {
    const path = u.slice('unix://'.length);
    if (!path.startsWith('/')) throw new InvalidArgumentError(field, url, 'unix URL needs an absolute path: unix:///abs/path');
    if (Buffer.byteLength(path) > 107) throw new InvalidArgumentError(field, url, 'unix socket path longer than 107 bytes');
    return { kind: 'unix', path, url: u };
  }
  let hostPort: string;
  if (u.startsWith('tcp://')) hostPort = u.slice('tcp://'.length).replace(/\/$/, '');
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(u)) {
    throw new InvalidArgumentError(field, url, `unsupported scheme "${u.split('://')[0]}"; use unix:///path or tcp://host:port`);
  } else if (u === '') {
    throw new InvalidArgumentError(field, url, 'empty URL; use unix:///path or tcp://host:port');
  } else hostPort = u;
  const m = /^(\[[^\]]+\]|[^:/]*):(\d{1,5})$/.exec(hostPort);
  if (!m) throw new InvalidArgumentError(field, url, 'expected tcp://host:port');
  const port = Number(m[2]);
  if (port > 65535) throw new InvalidArgumentError(field, url, 'port out of range');
  return { kind: 'tcp', host: m[1], port, url: u.startsWith('tcp://') ? u : `tcp://${u}` };
}

/** The gRPC target string for an NSM URL. */
export function grpcTarget(url: string | ParsedUrl): string {
  const p = typeof url === 'string' ? parseUrl(url) : url;
  if (p.kind === 'unix') return `unix://${p.path}`;
  return `${p.host === '' ? '0.0.0.0' : p.host}:${p.port}`;
}

/** True when something accepts connections on the unix socket at `path`. */
export function socketAlive(path: string, timeoutMs = 300): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (v: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

// ---- Servers ----------------------------------------------------------------------------------------

export interface ServiceRegistration {
  readonly definition: CompatServiceDefinition & { fullName: string };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly implementation: any;
}

export interface GrpcServer {
  readonly urls: readonly string[];
  /** Actual listen addresses (with the resolved port for tcp port 0). */
  readonly addresses: readonly string[];
  setServing(serving: boolean): void;
  stop(opts?: { force?: boolean }): Promise<void>;
}

/**
 * Server keepalive as upstream's Go servers (grpc-go defaults: ping an idle client after 2 h, wait 20 s for
 * the ack). A busy event loop on either side delays pings and acks by seconds; the earlier 10 s / 5 s
 * closed healthy connections of busy peers and failed every call on them. Client pings are permitted (a
 * tcp client uses them to find a dead host), no more often than every 5 s.
 */
export const SERVER_OPTIONS = {
  'grpc.keepalive_time_ms': 7_200_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.http2.min_ping_interval_without_data_ms': 5_000,
} as const;

/**
 * Serves the given services plus Health on every URL, with `security` (mTLS or explicitly INSECURE).
 * Stale unix sockets are replaced. With mTLS the source must have its first SVID (UnavailableError otherwise).
 */
export async function serve(urls: readonly string[], services: readonly ServiceRegistration[], security: TransportSecurity, field = 'NSM_LISTEN_ON'): Promise<GrpcServer> {
  const parsed = urls.map((u) => parseUrl(u, field));
  if (parsed.length === 0) throw new InvalidArgumentError(field, '', 'at least one URL to listen on is required');
  const health = new HealthService(services.map((s) => s.definition.fullName));
  // one gRPC server per URL: a server can listen only once
  const servers: PeerAwareServer[] = [];
  const addresses: string[] = [];
  const sockets: string[] = [];
  const newServer = () => {
    const server = new PeerAwareServer(SERVER_OPTIONS, security);
    server.add(HealthDefinition, health);
    for (const s of services) server.add(s.definition, s.implementation);
    servers.push(server);
    return server;
  };
  try {
    for (const p of parsed) {
      const server = newServer();
      if (p.kind === 'unix') {
        await claimSocketPath(p.path, field);
        await server.listenUnix(p.path);
        sockets.push(p.path);
        addresses.push(p.url);
      } else {
        const host = p.host === '' ? '0.0.0.0' : p.host;
        const port = await server.listenTcp(`${host}:${p.port}`);
        addresses.push(`tcp://${host}:${port}`);
      }
    }
  } catch (err) {
    for (const s of servers) s.forceShutdown();
    for (const s of sockets) removeSocket(s);
    health.stop();
    if (err instanceof InvalidArgumentError || err instanceof UnavailableError) throw err;
    throw new UnavailableError(`cannot listen on ${parsed.map((p) => p.url).join(',')}: ${(err as Error).message}`, { cause: err });
  }
  let stopped = false;
  return {
    urls: parsed.map((p) => p.url),
    addresses,
    setServing: (v) => health.setAll(v),
    async stop(opts = {}) {
      if (stopped) return;
      stopped = true;
      health.setAll(false);
      health.stop();
      await Promise.all(
        servers.map(async (server) => {
          if (opts.force) return server.forceShutdown();
          const t = setTimeout(() => server.forceShutdown(), 500);
          await server.shutdown();
          clearTimeout(t);
        }),
      );
      for (const s of sockets) removeSocket(s);
    },
  };
}

async function claimSocketPath(path: string, field: string): Promise<void> {
  const dir = dirname(path);
  if (!isDirectory(dir)) {
    throw new InvalidArgumentError(field, `unix://${path}`, `directory ${dir} does not exist; create it first (a server never creates directories)`);
  }
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) {
    throw new InvalidArgumentError(field, `unix://${path}`, 'path exists and is not a socket');
  }
  if (await socketAlive(path)) {
    throw new UnavailableError(`socket ${path} is in use by another live server; stop it first or choose another ${field}`);
  }
  unlinkSync(path);
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function removeSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    /* already gone */
  }
}

/**
 * grpc.health.v1.Health for one server: the empty service name and every served service answer SERVING
 * or NOT_SERVING together. Each Watch gets its own change queue, bounded to one pending wake-up: a wake
 * only says "re-read the status", so a second one while the first is unread adds nothing (drop-newest),
 * and a flapping server cannot grow a slow watcher's buffer. `stop()` ends every Watch stream.
 */
class HealthService {
  readonly #services: string[];
  #serving = true;
  #stopped = false;
  readonly #watchers = new Set<AsyncQueue<void>>();

  constructor(services: string[]) {
    this.#services = ['', ...services];
  }

  setAll(v: boolean): void {
    this.#serving = v;
    for (const w of this.#watchers) w.push();
  }

  stop(): void {
    this.#stopped = true;
    for (const w of this.#watchers) w.close(true);
  }

  #status(service: string): HealthCheckResponse_ServingStatus {
    if (!this.#services.includes(service)) return HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
    return this.#serving ? HealthCheckResponse_ServingStatus.SERVING : HealthCheckResponse_ServingStatus.NOT_SERVING;
  }

  async check(req: HealthCheckRequest): Promise<HealthCheckResponse> {
    const status = this.#status(req.service);
    if (status === HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN) {
      const { ServerError, Status } = await import('nice-grpc');
      throw new ServerError(Status.NOT_FOUND, `unknown service ${req.service}`);
    }
    return { status };
  }

  /** The current status, then each change, until the call is cancelled or the server stops. */
  async *watch(req: HealthCheckRequest, ctx: { signal: AbortSignal }): AsyncIterable<HealthCheckResponse> {
    if (this.#stopped || ctx.signal.aborted) return;
    const changes = new AsyncQueue<void>({ limit: 1, overflow: 'drop-newest', signal: ctx.signal, name: 'health watch' });
    this.#watchers.add(changes);
    try {
      let last = this.#status(req.service);
      yield { status: last };
      for await (const _ of changes) {
        const s = this.#status(req.service);
        if (s === last) continue;
        last = s;
        yield { status: s };
      }
    } finally {
      this.#watchers.delete(changes);
      changes.close(true);
    }
  }
}

// ---- Clients ----------------------------------------------------------------------------------------

/**
 * Channel options for every target. No keepalive here: upstream's Go clients send none, and a local
 * (unix socket) peer that dies closes the socket, which the channel sees at once. A busy peer answers
 * pings late, so keepalive would only turn load into failed calls.
 */
export const CHANNEL_OPTIONS = {
  'grpc.initial_reconnect_backoff_ms': 50,
  'grpc.min_reconnect_backoff_ms': 50,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.enable_retries': 0,
} as const;

/**
 * Added for tcp targets (another host may vanish without a FIN): ping after 30 s without activity and
 * allow 20 s for the ack (grpc-go's default ack timeout), long enough for a busy event loop.
 */
export const TCP_KEEPALIVE_OPTIONS = {
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 20_000,
  'grpc.keepalive_permit_without_calls': 1,
} as const;

/**
 * How long `dial` keeps waiting past its timeout while the peer is still being connected to (the socket
 * accepted, the HTTP/2 handshake not yet answered): a busy peer is not a dead one. A peer that refuses
 * (TRANSIENT_FAILURE) fails the dial at the timeout, as before.
 */
export const DEFAULT_DIAL_GRACE_MS = 10_000;

/** Fraction of the server certificate's lifetime after which a pooled channel is renewed for new calls. */
export const RENEW_AT = 0.75;

/** Credentials of channels made by `openChannel`, to read the server's identity back. */
const channelCredentialsOf = new WeakMap<Channel, MtlsChannelCredentials>();

/**
 * A channel to `url` with `security` (mTLS, optionally expecting one exact server SPIFFE ID, or explicitly
 * INSECURE) and the options of its kind (unix or tcp).
 */
export function openChannel(url: string, security: TransportSecurity, opts: { expectServerId?: string } = {}): Channel {
  const target = grpcTarget(url);
  let options: Record<string, number> = target.startsWith('unix:') ? CHANNEL_OPTIONS : { ...CHANNEL_OPTIONS, ...TCP_KEEPALIVE_OPTIONS };
  // nice-grpc reads this option as the deadline of a whole connection attempt (connect, TLS handshake,
  // HTTP/2 SETTINGS; grpc-js itself ignores it): 50 ms is too short for a TLS handshake on a busy host
  if (security.kind === 'mtls') options = { ...options, 'grpc.min_reconnect_backoff_ms': security.handshakeTimeoutMs };
  const creds = channelCredentials(security, { target: url, expectServerId: opts.expectServerId });
  const ch = createChannel(target, creds, options);
  if (creds instanceof MtlsChannelCredentials) channelCredentialsOf.set(ch, creds);
  return ch;
}

/**
 * The server's SPIFFE ID and certificate as of the latest mTLS handshake of `channel` (made by
 * `openChannel` or a pool); undefined for plaintext channels and before the first handshake.
 */
export function serverIdentityOf(channel: Channel): PeerIdentity | undefined {
  return channelCredentialsOf.get(channel)?.serverIdentity;
}

/** Channels shared per URL for the lifetime of a component, all with the pool's transport security. */
export class ChannelPool {
  readonly #channels = new Map<string, Channel>();
  readonly #dialGrace: number;
  readonly #security: TransportSecurity;

  constructor(security: TransportSecurity, options: { dialGrace?: number } = {}) {
    this.#security = security;
    this.#dialGrace = options.dialGrace ?? DEFAULT_DIAL_GRACE_MS;
  }

  get(url: string): Channel {
    const target = grpcTarget(url);
    let ch = this.#channels.get(target);
    if (ch && this.#stale(ch)) {
      // new calls go on a new connection; calls and streams already on the old one finish there (a
      // grpc-js channel closes its connection gracefully: HTTP/2 GOAWAY, open streams go on)
      ch.close();
      ch = undefined;
    }
    if (!ch) {
      ch = openChannel(url, this.#security);
      this.#channels.set(target, ch);
    }
    return ch;
  }

  /**
   * An mTLS channel whose handshake no longer fits the tokens sent on it: our SVID has rotated since (a
   * token is signed with the current key only on a connection that presented it), or the server's
   * certificate of that handshake is past RENEW_AT of its lifetime (it rotates about half-way, and a
   * token never outlives the certificate of its peer). Plaintext channels never are.
   */
  #stale(ch: Channel): boolean {
    if (this.#security.kind !== 'mtls') return false;
    const hs = serverIdentityOf(ch);
    if (!hs) return false;
    let current;
    try {
      current = this.#security.source.current().svid;
    } catch {
      return false;
    }
    if (hs.presented && hs.presented !== current && hs.presented.leaf.fingerprint256 !== current.leaf.fingerprint256) return true;
    const from = Date.parse(hs.certificate.validFrom);
    const to = Date.parse(hs.certificate.validTo);
    return Number.isFinite(from) && Number.isFinite(to) && Date.now() > from + RENEW_AT * (to - from);
  }

  /** The identity of the server at `url` as of the latest handshake of its pooled channel (see `serverIdentityOf`). */
  serverIdentity(url: string): PeerIdentity | undefined {
    const ch = this.#channels.get(grpcTarget(url));
    return ch && serverIdentityOf(ch);
  }

  /**
   * Waits until the channel to `url` is connected. Throws UnavailableError when the peer is not reached
   * within `timeoutMs`; a first connection attempt still in progress then (none refused) gets up to the
   * dial grace more (see DEFAULT_DIAL_GRACE_MS). `signal` ends the wait early.
   */
  async dial(url: string, timeoutMs: number, signal?: AbortSignal): Promise<Channel> {
    const ch = this.get(url);
    if (ch.getConnectivityState(true) === ConnectivityState.READY) return ch;
    const first = await waitReady(ch, Date.now() + timeoutMs, signal);
    let state = first.state;
    if (state === ConnectivityState.CONNECTING && !first.refused && this.#dialGrace > 0) state = (await waitReady(ch, Date.now() + this.#dialGrace, signal)).state;
    if (state === ConnectivityState.READY) return ch;
    if (signal?.aborted) throw new UnavailableError(`dial ${url} cancelled`, { cause: signal.reason });
    const grace = state === ConnectivityState.CONNECTING ? ` (+${this.#dialGrace} ms while connecting)` : '';
    const msg = `cannot reach ${url} within ${timeoutMs} ms${grace}: ${ConnectivityState[state]}`;
    // Still connecting and never refused: the peer is silent (a cut network), not gone.
    if (state === ConnectivityState.CONNECTING && !first.refused) throw new DeadlineExceededError(`${msg} (no answer)`);
    throw new UnavailableError(msg);
  }

  drop(url: string): void {
    const target = grpcTarget(url);
    this.#channels.get(target)?.close();
    this.#channels.delete(target);
  }

  close(): void {
    for (const ch of this.#channels.values()) ch.close();
    this.#channels.clear();
  }
}

/**
 * Resolves with the channel's state once it is READY, the deadline passes, or `signal` aborts; `refused`
 * says whether a connection attempt failed meanwhile (the channel passed through TRANSIENT_FAILURE).
 */
function waitReady(ch: Channel, deadline: number, signal?: AbortSignal): Promise<{ state: ConnectivityState; refused: boolean }> {
  return new Promise((resolve) => {
    let done = false;
    let refused = false;
    const finish = () => {
      if (done) return;
      done = true;
      signal?.removeEventListener('abort', finish);
      resolve({ state: ch.getConnectivityState(false), refused });
    };
    if (signal?.aborted) return finish();
    signal?.addEventListener('abort', finish, { once: true });
    const watch = (): void => {
      if (done) return;
      const state = ch.getConnectivityState(true);
      if (state === ConnectivityState.TRANSIENT_FAILURE) refused = true;
      if (state === ConnectivityState.READY || state === ConnectivityState.SHUTDOWN || Date.now() >= deadline) return finish();
      ch.watchConnectivityState(state, deadline, (err) => (err ? finish() : watch()));
    };
    watch();
  });
}

/** Clients made so far, per channel and service definition (see `createClient`). */
const clients = new WeakMap<Channel, Map<object, unknown>>();

/**
 * A nice-grpc client of `definition` on `channel`, made once per channel and reused: making one builds a
 * grpc-js client class and wraps every method, which cost more than the call itself when every Request,
 * Find and monitor stream made its own (scale profiles). Clients hold no per-call state.
 */
export const createClient: typeof niceCreateClient = ((definition: object, channel: Channel, defaultCallOptions?: object) => {
  if (defaultCallOptions !== undefined) return niceCreateClient(definition as never, channel, defaultCallOptions as never);
  let byDef = clients.get(channel);
  if (!byDef) clients.set(channel, (byDef = new Map()));
  let client = byDef.get(definition);
  if (!client) byDef.set(definition, (client = niceCreateClient(definition as never, channel)));
  return client;
}) as typeof niceCreateClient;
