/**
 * The mesh's own SPIFFE Workload API: `SpiffeWorkloadAPI/FetchX509SVID` and `FetchX509Bundles` on a unix
 * socket, for the one-host mesh (`nsm up`), where no SPIRE agent runs. Each call is attested (attest.ts:
 * the processes holding the caller's end of the connection, as the kernel reports them), the identity
 * policy (identity-policy.ts) names its SPIFFE ID or refuses it, and the embedded CA issues an X.509-SVID
 * for that ID. Upstream programs and nsm-ts components read it as they read SPIRE's agent socket
 * (`SPIFFE_ENDPOINT_SOCKET=unix://…`).
 *
 * Guarantees:
 * - A call without the `workload.spiffe.io: true` header fails with INVALID_ARGUMENT (as SPIRE's agent).
 * - A caller that cannot be attested, or that the policy refuses, gets PERMISSION_DENIED naming its pid and
 *   why; never an SVID. Refusals are logged at warn, once per pid (bounded memory).
 * - One SVID per identity, shared by every stream of that identity, re-issued once `rotateFraction` of its
 *   TTL has passed; each open stream then gets a new response (re-attested first: a caller whose identity
 *   changed or went away gets PERMISSION_DENIED and its stream ends). `bundleChanged()` pushes the new
 *   bundle to every open stream. Each issued SVID is logged at info (id, pid, expiry).
 * - At most `maxStreams` streams at once (RESOURCE_EXHAUSTED beyond). The X.509 profile only (the
 *   proto has no JWT methods; nothing in NSM uses JWT-SVIDs).
 */
import type { CallContext, Metadata } from 'nice-grpc';
import { SpiffeWorkloadAPIDefinition, type SpiffeWorkloadAPIServiceImplementation, type X509BundlesResponse, type X509SVIDResponse } from '../api/gen/workload.js';
import { InvalidArgumentError, PermissionDeniedError, ResourceExhaustedError, toServerError } from '../core/errors.js';
import { peerSocket } from '../core/grpc-server.js';
import type { Logger } from '../core/log.js';
import { socketFd } from '../core/peer.js';
import { serve, type GrpcServer } from '../core/transport.js';
import { attestSocket, type Attestation } from './attest.js';
import { identityFor, type MeshKnowledge } from './identity-policy.js';
import { trustDomainOf, type X509Svid } from './svid.js';
import { INSECURE } from './tls.js';
import { DEFAULT_SVID_TTL_MS, MAX_SVID_TTL_MS, MIN_SVID_TTL_MS } from './ca.js';
import { MAX_BUNDLE_CERTS, splitPem, svidToDer } from './x509.js';

export const WORKLOAD_HEADER = 'workload.spiffe.io';

export const DEFAULT_ROTATE_FRACTION = 0.5;
export const MIN_ROTATE_FRACTION = 0.05;
export const MAX_ROTATE_FRACTION = 0.9;
export const DEFAULT_MAX_STREAMS = 1024;
export const MAX_MAX_STREAMS = 65_536;
/** How many refused pids are remembered for warn-once logging before the memory is cleared. */
export const REFUSAL_MEMORY = 1024;

/** Issues an X.509-SVID for a SPIFFE ID: the embedded CA (security/ca.ts `EmbeddedCa`) is one. */
export interface SvidIssuer {
  issue(req: { readonly spiffeId: string; readonly ttlMs: number }): X509Svid;
}

export interface WorkloadApiDeps {
  readonly issuer: SvidIssuer;
  /** Trust bundles by trust domain (root certificates, PEM), the issuer's own among them. */
  readonly bundles: () => ReadonlyMap<string, string>;
  /** What the mesh knows now (components its supervisor started, its pods); read at every attestation. */
  readonly knowledge: () => MeshKnowledge | Promise<MeshKnowledge>;
  readonly log: Logger;
}

export interface WorkloadApiOptions {
  readonly svidTtlMs?: number;
  /** Fraction of an SVID's TTL after which it is re-issued and pushed. */
  readonly rotateFraction?: number;
  readonly maxStreams?: number;
}

interface Config {
  readonly svidTtlMs: number;
  readonly rotateFraction: number;
  readonly maxStreams: number;
}

function bounded(field: string, value: number | undefined, def: number, min: number, max: number): number {
  const v = value ?? def;
  if (!Number.isFinite(v) || v < min || v > max) throw new InvalidArgumentError(field, v, `must be between ${min} and ${max}`);
  return v;
}

export function resolveWorkloadApiOptions(o: WorkloadApiOptions = {}): Readonly<Config> {
  return Object.freeze({
    svidTtlMs: bounded('svidTtlMs', o.svidTtlMs, DEFAULT_SVID_TTL_MS, MIN_SVID_TTL_MS, MAX_SVID_TTL_MS),
    rotateFraction: bounded('rotateFraction', o.rotateFraction, DEFAULT_ROTATE_FRACTION, MIN_ROTATE_FRACTION, MAX_ROTATE_FRACTION),
    maxStreams: Math.floor(bounded('maxStreams', o.maxStreams, DEFAULT_MAX_STREAMS, 1, MAX_MAX_STREAMS)),
  });
}

/** Concatenated DER of a PEM bundle's certificates (the Workload API's wire form of a bundle). */
function bundleDer(pem: string): Buffer {
  return Buffer.concat(splitPem(pem, 'CERTIFICATE', 'bundle', MAX_BUNDLE_CERTS));
}

/**
 * The FetchX509SVID response for one SVID: its chain and key as DER, its trust domain's bundle, the others
 * federated, keyed by the trust domain's SPIFFE ID (`spiffe://<td>`, as the standard says and SPIRE sends).
 */
export function x509SvidResponse(svid: X509Svid, bundles: ReadonlyMap<string, string>): X509SVIDResponse {
  const td = trustDomainOf(svid.spiffeId);
  const federatedBundles: Record<string, Buffer> = {};
  for (const [name, pem] of bundles) if (name !== td) federatedBundles[`spiffe://${name}`] = bundleDer(pem);
  const { certs, key } = svidToDer(svid);
  const svidMsg = { spiffeId: svid.spiffeId, x509Svid: certs, x509SvidKey: key, bundle: bundleDer(td === undefined ? '' : (bundles.get(td) ?? '')), hint: '' };
  return { svids: [svidMsg], crl: [], federatedBundles };
}

/** The FetchX509Bundles response: every bundle, the own trust domain's included, keyed by `spiffe://<td>`. */
export function x509BundlesResponse(bundles: ReadonlyMap<string, string>): X509BundlesResponse {
  const out: Record<string, Buffer> = {};
  for (const [name, pem] of bundles) out[`spiffe://${name}`] = bundleDer(pem);
  return { crl: [], bundles: out };
}

function requireWorkloadHeader(md: Metadata): void {
  const v = md.get(WORKLOAD_HEADER);
  if (v !== 'true') throw new InvalidArgumentError(WORKLOAD_HEADER, v ?? '', 'security header missing from request');
}

interface CachedSvid {
  readonly svid: X509Svid;
  readonly rotateAt: number;
}

/** The Workload API service and its state (SVID cache, open streams); `listen()` serves it on a unix socket. */
export class WorkloadApi {
  readonly #deps: WorkloadApiDeps;
  readonly #cfg: Readonly<Config>;
  readonly #svids = new Map<string, CachedSvid>();
  readonly #wakers = new Set<() => void>();
  readonly #refused = new Set<string>();
  #bundleVersion = 0;
  #streams = 0;

  constructor(deps: WorkloadApiDeps, options: WorkloadApiOptions = {}) {
    this.#deps = deps;
    this.#cfg = resolveWorkloadApiOptions(options);
  }

  /** Serves the API on the unix socket at `path` (its directory must exist; a stale socket is replaced). */
  listen(path: string): Promise<GrpcServer> {
    // Plaintext, as the SPIFFE Workload API is: a workload asks here for the SVID it does not have yet;
    // who it is comes from attesting the socket, not from a certificate.
    return serve([`unix://${path}`], [{ definition: SpiffeWorkloadAPIDefinition, implementation: this.implementation() }], INSECURE, 'SPIFFE_ENDPOINT_SOCKET');
  }

  /** The trust bundle changed (CA rotation, federation): every open stream gets a new response. */
  bundleChanged(): void {
    this.#bundleVersion++;
    this.#wakeAll();
  }

  /** Ends the waits of every stream (they re-check their signal and end when the server stops). */
  #wakeAll(): void {
    for (const w of [...this.#wakers]) w();
  }

  implementation(): SpiffeWorkloadAPIServiceImplementation {
    return {
      fetchX509SVID: (_req, call) => this.#stream(call, 'svid'),
      fetchX509Bundles: (_req, call) => this.#stream(call, 'bundles'),
    };
  }

  async *#stream(call: CallContext, kind: 'svid' | 'bundles'): AsyncGenerator<X509SVIDResponse | X509BundlesResponse> {
    try {
      requireWorkloadHeader(call.metadata);
      if (this.#streams >= this.#cfg.maxStreams) throw new ResourceExhaustedError(`the Workload API serves at most ${this.#cfg.maxStreams} streams`);
      this.#streams++;
      try {
        yield* this.#updates(call, kind);
      } finally {
        this.#streams--;
      }
    } catch (err) {
      if (call.signal.aborted) return;
      throw toServerError(err);
    }
  }

  /** One response now, then one after each rotation of the caller's SVID and each bundle change. */
  async *#updates(call: CallContext, kind: 'svid' | 'bundles'): AsyncGenerator<X509SVIDResponse | X509BundlesResponse> {
    let sent: { svid?: X509Svid; bundleVersion: number } | undefined;
    while (!call.signal.aborted) {
      const { spiffeId, pid } = await this.#identify(call);
      const cached = this.#svidFor(spiffeId, pid);
      const bundleVersion = this.#bundleVersion;
      const changed = !sent || sent.bundleVersion !== bundleVersion || (kind === 'svid' && sent.svid !== cached.svid);
      if (changed) {
        const bundles = this.#deps.bundles();
        yield kind === 'svid' ? x509SvidResponse(cached.svid, bundles) : x509BundlesResponse(bundles);
        sent = { svid: cached.svid, bundleVersion };
      }
      await this.#wait(cached.rotateAt - Date.now(), call.signal);
    }
  }

  /** Resolves after `ms`, on a bundle change, or when `signal` aborts (never rejects). */
  #wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(ms, 0) + 5);
      signal.addEventListener('abort', done, { once: true });
      this.#wakers.add(done);
    });
  }

  /** Attests the caller of `call` and applies the identity policy; PermissionDeniedError when refused. */
  async #identify(call: CallContext): Promise<{ spiffeId: string; pid: number }> {
    const socket = peerSocket(call.peer);
    const fd = socket ? socketFd(socket) : undefined;
    if (fd === undefined) throw new PermissionDeniedError('the Workload API attests callers on its unix socket only');
    let att: Attestation;
    try {
      att = await attestSocket(fd, { signal: call.signal });
    } catch (err) {
      this.#warnOnce(`unattested: ${(err as Error).message}`, (err as Error).message);
      throw err;
    }
    const decision = identityFor(att, await this.#deps.knowledge());
    if (!decision.ok) {
      this.#warnOnce(String(decision.pid ?? 'unknown'), decision.reason);
      throw new PermissionDeniedError(`no identity: ${decision.reason}`);
    }
    return decision;
  }

  #warnOnce(key: string, reason: string): void {
    if (this.#refused.has(key)) return;
    if (this.#refused.size >= REFUSAL_MEMORY) this.#refused.clear();
    this.#refused.add(key);
    this.#deps.log.warn({ reason }, 'Workload API: no SVID for the caller');
  }

  /** The cached SVID of `spiffeId`, re-issued when its rotation time has come; expired entries are dropped. */
  #svidFor(spiffeId: string, pid: number): CachedSvid {
    const now = Date.now();
    const cached = this.#svids.get(spiffeId);
    if (cached && now < cached.rotateAt) return cached;
    for (const [id, c] of this.#svids) if (c.svid.notAfter.getTime() <= now) this.#svids.delete(id);
    const svid = this.#deps.issuer.issue({ spiffeId, ttlMs: this.#cfg.svidTtlMs });
    // the CA may cut a lifetime short (at its root's end): rotate at the fraction of what was issued
    const rotateAt = now + Math.max(svid.notAfter.getTime() - now, 0) * this.#cfg.rotateFraction;
    const entry = { svid, rotateAt };
    this.#svids.set(spiffeId, entry);
    this.#deps.log.info({ spiffeId, pid, expires: svid.notAfter.toISOString() }, 'Workload API: issued X.509-SVID');
    return entry;
  }
}
