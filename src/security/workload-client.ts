/**
 * Our own SPIFFE Workload API client: an `X509Source` fed by the `FetchX509SVID` stream of a SPIRE agent
 * (or the mesh's embedded issuer) on a unix socket, as go-spiffe's `workloadapi.X509Source` is for upstream
 * NSM. It keeps one stream open (request header `workload.spiffe.io: true`), takes the first SVID of each
 * response (the default SVID), validates it with x509.ts, takes the bundles from the SVID's `bundle` (its
 * own trust domain) and `federated_bundles`, swaps the material and then tells `onUpdate` listeners. A
 * malformed response never replaces a good SVID (it is logged and dropped). When the stream fails or ends
 * it reconnects on a fresh channel after a linear backoff (1 s, 2 s, … 30 s, reset by every response, as
 * go-spiffe), for ever, PermissionDenied included; until the first SVID arrives it says every
 * `waitLogEveryMs` (5 s) what it waits for. Background work: that loop and that timer, both stopped by
 * `close()` or the `signal` given at creation.
 */
import { ChannelCredentials } from '@grpc/grpc-js';
import { Metadata, createChannel, createClient } from 'nice-grpc';
import { SpiffeWorkloadAPIDefinition, type X509SVIDResponse } from '../api/gen/workload.js';
import { type Clock, type TimerHandle, realClock } from '../core/clock.js';
import { delay } from '../core/delay.js';
import { CancelledError, InvalidArgumentError, UnavailableError, errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { parseSpiffeId } from './spiffe-id.js';
import type { Unsubscribe, X509Material, X509Source } from './svid.js';
import { bundlesFromWire, parseCertificates, parseX509SvidDer, verifySvidChain } from './x509.js';

export const ENDPOINT_ENV = 'SPIFFE_ENDPOINT_SOCKET';
export const WORKLOAD_HEADER = 'workload.spiffe.io';
export const BACKOFF_STEP_MS = 1000;
export const BACKOFF_MAX_MS = 30_000;
export const DEFAULT_WAIT_LOG_EVERY_MS = 5000;
export const MIN_WAIT_LOG_EVERY_MS = 10;
export const MAX_WAIT_LOG_EVERY_MS = 5000;
/** Longest wait between attempts an injected `backoffMs` may ask for. */
export const MAX_BACKOFF_MS = 60_000;
/** Most federated bundles one response may carry. */
export const MAX_FEDERATED_BUNDLES = 256;
/** Longest unix socket path (sun_path holds 108 bytes with the terminating NUL). */
export const MAX_SOCKET_PATH = 107;

/** go-spiffe's backoff: `attempt` × 1 s, at most 30 s. */
export function linearBackoff(attempt: number, stepMs = BACKOFF_STEP_MS, maxMs = BACKOFF_MAX_MS): number {
  return Math.min(maxMs, Math.max(1, attempt) * stepMs);
}

/**
 * The gRPC target of a `SPIFFE_ENDPOINT_SOCKET` value: `unix:///abs/path` or `unix:/abs/path`. Anything
 * else (tcp, relative paths, a host, query, fragment, user info) is refused naming the variable and value.
 */
export function parseWorkloadEndpoint(value: string, field = ENDPOINT_ENV): string {
  const fail = (reason: string) => new InvalidArgumentError(field, value, reason);
  if (!value) throw fail('the SPIFFE Workload API socket is not configured (e.g. unix:///run/spire/sockets/agent.sock)');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw fail('not a URI; expected unix:///absolute/path');
  }
  if (url.protocol === 'tcp:') throw fail('only unix sockets are supported (tcp is not); expected unix:///absolute/path');
  if (url.protocol !== 'unix:') throw fail('the scheme must be unix; expected unix:///absolute/path');
  if (url.username || url.password) throw fail('a unix socket URI must not include user info');
  if (url.host) throw fail('a unix socket URI has no host; expected unix:///absolute/path');
  if (url.search || url.hash || value.includes('#')) throw fail('a unix socket URI must not include a query or fragment');
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    throw fail('the path is not valid percent-encoding');
  }
  if (!path.startsWith('/')) throw fail('the socket path must be absolute');
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw fail(`the socket path is longer than ${MAX_SOCKET_PATH} bytes`);
  return `unix://${path}`;
}

/**
 * The material of one response: its first (default) SVID, validated, with the bundles of its own trust
 * domain and the federated ones. Throws InvalidArgumentError naming the field of a malformed response.
 */
export function materialFromResponse(resp: X509SVIDResponse, maxFederated = MAX_FEDERATED_BUNDLES): X509Material {
  const first = resp.svids[0];
  if (!first) throw new InvalidArgumentError('svids', 0, 'the response holds no SVID');
  const svid = parseX509SvidDer(first.x509Svid, first.x509SvidKey, 'svids[0].x509_svid');
  if (first.spiffeId !== '' && first.spiffeId !== svid.spiffeId) throw new InvalidArgumentError('svids[0].spiffe_id', first.spiffeId, `differs from the leaf's URI SAN ${svid.spiffeId}`);
  if (first.bundle.length === 0) throw new InvalidArgumentError('svids[0].bundle', '', 'the trust bundle of the SVID\'s trust domain is required');
  const td = parseSpiffeId(svid.spiffeId).trustDomain;
  return { svid, bundles: bundlesFromWire(td, first.bundle, resp.federatedBundles, maxFederated) };
}

function sameMaterial(a: X509Material, b: X509Material): boolean {
  if (a.svid.certChainPem !== b.svid.certChainPem || a.svid.keyPem !== b.svid.keyPem || a.bundles.size !== b.bundles.size) return false;
  for (const [td, pem] of a.bundles) if (b.bundles.get(td) !== pem) return false;
  return true;
}

export interface WorkloadApiSourceOptions {
  /** A `SPIFFE_ENDPOINT_SOCKET` value: `unix:///abs/path` or `unix:/abs/path`. */
  readonly endpoint: string;
  readonly log: Logger;
  readonly clock?: Clock;
  /** Closes the source when it aborts (the component's lifetime). */
  readonly signal?: AbortSignal;
  /** Wait before reconnect attempt n (1, 2, …); go-spiffe's `linearBackoff` by default. For tests. */
  readonly backoffMs?: (attempt: number) => number;
  /** How often to log while no SVID has arrived; DEFAULT_WAIT_LOG_EVERY_MS, within [MIN_…, MAX_…]. */
  readonly waitLogEveryMs?: number;
}

/** Opens an X509Source on the SPIFFE Workload API at `endpoint` (validated here, at once). */
export function workloadApiSource(opts: WorkloadApiSourceOptions): WorkloadApiSource {
  return new WorkloadApiSource(opts);
}

export class WorkloadApiSource implements X509Source {
  readonly endpoint: string;
  /** Settles when the background loop has ended after `close()`. */
  readonly stopped: Promise<void>;
  readonly #target: string;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #backoff: (attempt: number) => number;
  readonly #waitLogEveryMs: number;
  readonly #stop = new AbortController();
  readonly #listeners = new Set<(m: X509Material) => void>();
  readonly #waiters = new Set<{ resolve: (m: X509Material) => void; reject: (e: Error) => void }>();
  readonly #since: number;
  readonly #unlinkParent: () => void;
  #material: X509Material | undefined;
  #lastError = 'no answer yet';
  #waitTimer: TimerHandle | undefined;

  constructor(opts: WorkloadApiSourceOptions) {
    this.endpoint = opts.endpoint;
    this.#target = parseWorkloadEndpoint(opts.endpoint);
    const every = opts.waitLogEveryMs ?? DEFAULT_WAIT_LOG_EVERY_MS;
    if (!Number.isFinite(every) || every < MIN_WAIT_LOG_EVERY_MS || every > MAX_WAIT_LOG_EVERY_MS) throw new InvalidArgumentError('waitLogEveryMs', every, `must be in [${MIN_WAIT_LOG_EVERY_MS}, ${MAX_WAIT_LOG_EVERY_MS}] ms`);
    this.#waitLogEveryMs = every;
    this.#log = opts.log.child({ element: 'workload-api-source' });
    this.#clock = opts.clock ?? realClock;
    this.#backoff = opts.backoffMs ?? ((n) => linearBackoff(n));
    this.#since = this.#clock.now();
    const parent = opts.signal;
    const onParentAbort = () => this.close();
    parent?.addEventListener('abort', onParentAbort, { once: true });
    this.#unlinkParent = () => parent?.removeEventListener('abort', onParentAbort);
    this.#armWaitLog();
    if (parent?.aborted) this.close();
    this.stopped = this.#run();
  }

  current(): X509Material {
    if (!this.#material) throw new UnavailableError(`no X.509-SVID yet from the SPIFFE Workload API at ${this.endpoint} (${this.#lastError})`);
    return this.#material;
  }

  ready(signal?: AbortSignal): Promise<X509Material> {
    if (this.#stop.signal.aborted) return Promise.reject(new CancelledError('the Workload API source is closed'));
    if (this.#material) return Promise.resolve(this.#material);
    if (signal?.aborted) return Promise.reject(new CancelledError(`waiting for an X.509-SVID from ${this.endpoint}: cancelled`));
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiters.delete(waiter);
        reject(new CancelledError(`waiting for an X.509-SVID from ${this.endpoint}: cancelled (${this.#lastError})`));
      };
      const waiter = {
        resolve: (m: X509Material) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(m);
        },
        reject: (e: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      this.#waiters.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  onUpdate(listener: (material: X509Material) => void): Unsubscribe {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  close(): void {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort(new CancelledError('the Workload API source is closed'));
    this.#unlinkParent();
    this.#waitTimer?.cancel();
    for (const w of this.#waiters) w.reject(new CancelledError('the Workload API source is closed'));
    this.#waiters.clear();
    this.#listeners.clear();
  }

  #armWaitLog(): void {
    this.#waitTimer = this.#clock.setTimeout(() => {
      if (this.#material || this.#stop.signal.aborted) return;
      this.#log.warn({ endpoint: this.endpoint, waitedMs: this.#clock.now() - this.#since, lastError: this.#lastError }, 'waiting for the first X.509-SVID from the SPIFFE Workload API');
      this.#armWaitLog();
    }, this.#waitLogEveryMs);
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    for (let attempt = 0; !signal.aborted; ) {
      const channel = createChannel(this.#target, ChannelCredentials.createInsecure());
      try {
        const client = createClient(SpiffeWorkloadAPIDefinition, channel);
        const stream = client.fetchX509SVID({}, { signal, metadata: Metadata({ [WORKLOAD_HEADER]: 'true' }) });
        for await (const resp of stream) {
          attempt = 0;
          this.#apply(resp);
        }
        this.#lastError = 'the Workload API ended the stream';
      } catch (err) {
        if (signal.aborted) break;
        this.#lastError = errorMessage(err);
      } finally {
        channel.close();
      }
      const wait = Math.min(MAX_BACKOFF_MS, Math.max(0, this.#backoff(++attempt) || 0));
      const fields = { endpoint: this.endpoint, lastError: this.#lastError, attempt, retryInMs: wait };
      if (this.#material) this.#log.warn(fields, 'the Workload API stream broke; keeping the current SVID and reconnecting');
      else this.#log.debug(fields, 'the Workload API gave no SVID yet; reconnecting');
      try {
        await delay(this.#clock, wait, signal);
      } catch {
        break;
      }
    }
  }

  #apply(resp: X509SVIDResponse): void {
    let material: X509Material;
    try {
      material = materialFromResponse(resp);
    } catch (err) {
      this.#lastError = `malformed X509SVIDResponse: ${errorMessage(err)}`;
      this.#log.error({ endpoint: this.endpoint, err }, this.#material ? 'dropped a malformed X509SVIDResponse; keeping the current SVID' : 'dropped a malformed X509SVIDResponse');
      return;
    }
    if (this.#material && sameMaterial(this.#material, material)) return;
    this.#checkOwnBundle(material);
    const first = !this.#material;
    this.#material = material;
    this.#log.info({ spiffeId: material.svid.spiffeId, notAfter: material.svid.notAfter.toISOString(), trustDomains: [...material.bundles.keys()] }, first ? 'got the first X.509-SVID' : 'X.509-SVID or bundles updated');
    if (first) {
      this.#waitTimer?.cancel();
      for (const w of this.#waiters) w.resolve(material);
      this.#waiters.clear();
    }
    for (const l of [...this.#listeners]) {
      try {
        l(material);
      } catch (err) {
        this.#log.error({ err }, 'an X.509-SVID update listener threw');
      }
    }
  }

  /** A warning, not a refusal (go-spiffe does not check this): an SVID that its own bundle does not verify breaks every handshake. */
  #checkOwnBundle(m: X509Material): void {
    try {
      verifySvidChain(parseCertificates(m.svid.certChainPem), m.bundles, this.#clock.now());
    } catch (err) {
      this.#log.warn({ spiffeId: m.svid.spiffeId, err }, 'the new X.509-SVID does not verify against its own trust bundle');
    }
  }
}
