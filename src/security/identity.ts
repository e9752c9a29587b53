/**
 * A component's identity, the one place where its configuration (`SPIFFE_ENDPOINT_SOCKET`, `NSM_INSECURE`,
 * `NSM_MAX_TOKEN_LIFETIME`) becomes what its servers, channels and path tokens use: `{ security, tokens,
 * source }`.
 *
 * - Secure (the default): an X509Source on the SPIFFE Workload API (workload-client.ts); start waits for the
 *   first X.509-SVID (the source logs every few seconds what it waits for; the caller's `signal`, e.g.
 *   SIGTERM during start-up, ends the wait with a CancelledError and closes the source), then mTLS from that
 *   source (tls.ts) and ES256 path tokens signed with the SVID key (token.ts). Logs `identity: <id> until
 *   <NotAfter>` at start and at each rotation. A rotation drops nothing: tls.ts uses the new material for
 *   new handshakes only and the token generator reads the current SVID at each call, so nothing here or in
 *   a component keeps the old material.
 * - Insecure (`NSM_INSECURE=true`, explicit only): plaintext gRPC and HS256 tokens with a per-process
 *   secret that no one can verify; a warning at start.
 *
 * `stop()` closes the source (its stream and timers); an identity made with `identityFromSource` leaves
 * closing the source to whoever made it.
 */
import { CancelledError, InvalidArgumentError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { hs256TokenGenerator, type TokenGenerator } from '../core/token.js';
import type { Clock } from '../core/clock.js';
import type { X509Material, X509Source } from './svid.js';
import { INSECURE, mtls, type TransportSecurity } from './tls.js';
import { es256TokenGenerator } from './token.js';
import { ENDPOINT_ENV, workloadApiSource } from './workload-client.js';

/** The warning every component logs at start when NSM_INSECURE=true. */
export const INSECURE_WARNING = 'NSM_INSECURE=true: plaintext gRPC, unverified tokens';

/** What logs and status show of an identity. */
export interface IdentityDescription {
  readonly insecure: boolean;
  readonly spiffeId?: string;
  /** NotAfter of the current SVID, ISO 8601. */
  readonly notAfter?: string;
}

export interface Identity {
  readonly security: TransportSecurity;
  readonly tokens: TokenGenerator;
  /** The SVID source; absent when insecure. */
  readonly source?: X509Source;
  readonly insecure: boolean;
  describe(): IdentityDescription;
  /** Stops following rotations and closes the source if this identity opened it. Idempotent. */
  stop(): void;
}

export interface IdentityOptions {
  /** NSM_INSECURE: plaintext and HS256 tokens. */
  readonly insecure: boolean;
  /** SPIFFE_ENDPOINT_SOCKET as resolved by the config (`unix:///abs/path`); required unless insecure. */
  readonly endpoint?: string;
  readonly log: Logger;
  /** NSM_MAX_TOKEN_LIFETIME (ms); the token generators' default (10 min) when absent. */
  readonly maxTokenLifetime?: number;
  /** Aborts the wait for the first SVID (the component's start-up, e.g. on SIGTERM). */
  readonly signal?: AbortSignal;
  /** `sub` of the HS256 tokens when insecure, e.g. `nsm-ts/nsc/<name>`. */
  readonly insecureSubject?: string;
  /** How often the source logs while it waits for the first SVID (tests); the source's default (5 s) otherwise. */
  readonly waitLogEveryMs?: number;
  readonly clock?: Clock;
}

function describeMaterial(m: X509Material): { spiffeId: string; notAfter: string } {
  return { spiffeId: m.svid.spiffeId, notAfter: m.svid.notAfter.toISOString() };
}

/** The insecure identity: plaintext, HS256 tokens; logs INSECURE_WARNING. */
export function insecureIdentity(opts: Pick<IdentityOptions, 'log' | 'maxTokenLifetime' | 'insecureSubject' | 'clock'>): Identity {
  opts.log.warn({ security: 'insecure' }, INSECURE_WARNING);
  return {
    security: INSECURE,
    tokens: hs256TokenGenerator({ maxTokenLifetime: opts.maxTokenLifetime, subject: opts.insecureSubject, clock: opts.clock }),
    insecure: true,
    describe: () => ({ insecure: true }),
    stop: () => undefined,
  };
}

/**
 * The secure identity of an X509Source that already has its first SVID (await `source.ready()` first):
 * mTLS and ES256 tokens from it, rotations logged. `stop()` closes the source only when `ownsSource`.
 */
export function identityFromSource(source: X509Source, opts: Pick<IdentityOptions, 'log' | 'maxTokenLifetime' | 'clock'> & { ownsSource?: boolean }): Identity {
  const log = opts.log;
  const first = describeMaterial(source.current());
  log.info({ security: 'mtls', ...first }, `identity: ${first.spiffeId} until ${first.notAfter}`);
  const unsubscribe = source.onUpdate((m) => {
    const d = describeMaterial(m);
    log.info({ security: 'mtls', ...d, trustDomains: [...m.bundles.keys()] }, `identity rotated: ${d.spiffeId} until ${d.notAfter}`);
  });
  let stopped = false;
  return {
    security: mtls(source, { log }),
    tokens: es256TokenGenerator(source, { maxTokenLifetime: opts.maxTokenLifetime, clock: opts.clock }),
    source,
    insecure: false,
    describe() {
      try {
        return { insecure: false, ...describeMaterial(source.current()) };
      } catch {
        return { insecure: false };
      }
    },
    stop() {
      if (stopped) return;
      stopped = true;
      unsubscribe();
      if (opts.ownsSource) source.close();
    },
  };
}

/**
 * The identity a component runs with (see the top of this file). Resolves once the first SVID is there
 * (at once when insecure); rejects with CancelledError when `signal` aborts first, with
 * InvalidArgumentError naming SPIFFE_ENDPOINT_SOCKET when it is missing or malformed.
 */
export async function startIdentity(opts: IdentityOptions): Promise<Identity> {
  if (opts.insecure) return insecureIdentity(opts);
  if (!opts.endpoint) throw new InvalidArgumentError(ENDPOINT_ENV, '', 'no SPIFFE Workload API socket; set it, or NSM_INSECURE=true for plaintext');
  if (opts.signal?.aborted) throw new CancelledError('start-up cancelled before the SPIFFE Workload API was asked for an SVID');
  const source = workloadApiSource({ endpoint: opts.endpoint, log: opts.log, clock: opts.clock, waitLogEveryMs: opts.waitLogEveryMs });
  opts.log.info({ endpoint: opts.endpoint }, 'waiting for the X.509-SVID from the SPIFFE Workload API');
  try {
    await source.ready(opts.signal);
  } catch (err) {
    source.close();
    await source.stopped;
    throw err;
  }
  return identityFromSource(source, { ...opts, ownsSource: true });
}
