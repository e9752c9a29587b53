/**
 * Per-hop tokens (spec §1.3, §1.6; upstream `sdk:pkg/tools/token`). A `TokenGenerator` issues the token a
 * hop puts into its own path segment and sends as `nsm-client-token` metadata. Two generators: this file's
 * HS256 JWTs with a random per-process secret (meshes without identities), and `security/token.ts`'s ES256
 * tokens signed with the SVID key (upstream's `spiffejwt`), both behind `TokenGenerator`.
 * Expiry travels as RFC3339Nano text (`nsm-client-token-expires`), formatted like Go does.
 * Signing is a synchronous HMAC (node:crypto): every hop of every Request signs one, and jose's signing
 * (WebCrypto key import and a thread-pool job per token) cost 1–2 ms of CPU per hop in profiles.
 * Verification (tests, and the identity work to come) stays with jose.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { jwtVerify, type JWTPayload } from 'jose';
import { MD_CLIENT_TOKEN, MD_CLIENT_TOKEN_EXPIRES } from '../api/constants.js';
import { MAX_TOKEN_LENGTH } from '../api/limits.js';
import { realClock, type Clock } from './clock.js';
import { InvalidArgumentError } from './errors.js';
import type { X509Svid } from '../security/svid.js';

export interface IssuedToken {
  readonly token: string;
  readonly expires: Date;
}

/** Who a token is for: the TLS peer of the call it rides on (upstream takes both from the peer's certificate). */
export interface TokenRequest {
  /** The peer's SPIFFE ID, the token's `aud`; omitted when there is no peer certificate. */
  readonly audience?: string;
  /** NotAfter of the peer's certificate: the token expires no later than it. */
  readonly peerNotAfter?: Date;
  /**
   * Sign with this one of our SVIDs instead of the current one: the SVID we presented on the connection
   * the token is for, whose certificate the peer verifies it with (it may have rotated since).
   */
  readonly signer?: X509Svid;
}

export interface TokenGenerator {
  generate(opts?: TokenRequest): Promise<IssuedToken>;
}

/** Upstream `NSM_MAX_TOKEN_LIFETIME` default: 10 minutes. */
export const DEFAULT_MAX_TOKEN_LIFETIME_MS = 10 * 60_000;
export const DEFAULT_TOKEN_SUBJECT = 'spiffe://nsm-ts.local/nsm';

export interface Hs256TokenOptions {
  /** Token lifetime (ms). Default DEFAULT_MAX_TOKEN_LIFETIME_MS. */
  readonly maxTokenLifetime?: number;
  /** `sub` claim. Default DEFAULT_TOKEN_SUBJECT. */
  readonly subject?: string;
  /** HMAC secret. Default: 32 random bytes per generator. */
  readonly secret?: Uint8Array;
  readonly clock?: Clock;
}

export interface Hs256TokenGenerator extends TokenGenerator {
  /** Verifies a token issued with the same secret; throws InvalidArgumentError when it is not valid. */
  verify(token: string): Promise<JWTPayload>;
}

export function hs256TokenGenerator(options: Hs256TokenOptions = {}): Hs256TokenGenerator {
  const lifetime = options.maxTokenLifetime ?? DEFAULT_MAX_TOKEN_LIFETIME_MS;
  if (!Number.isFinite(lifetime) || lifetime < 1000) {
    throw new InvalidArgumentError('maxTokenLifetime', lifetime, 'must be at least 1000 ms');
  }
  const secret = options.secret ?? new Uint8Array(randomBytes(32));
  const subject = options.subject ?? DEFAULT_TOKEN_SUBJECT;
  const clock = options.clock ?? realClock;
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  return {
    generate(opts = {}) {
      const now = clock.now();
      const exp = Math.floor(Math.min(now + lifetime, opts.peerNotAfter?.getTime() ?? Infinity) / 1000);
      const claims = { sub: subject, iat: Math.floor(now / 1000), exp, ...(opts.audience ? { aud: opts.audience } : {}) };
      const signingInput = `${header}.${b64url(JSON.stringify(claims))}`;
      const signature = createHmac('sha256', secret).update(signingInput).digest('base64url');
      return Promise.resolve({ token: `${signingInput}.${signature}`, expires: new Date(exp * 1000) });
    },
    async verify(token) {
      try {
        const { payload } = await jwtVerify(token, secret, { algorithms: ['HS256'], currentDate: new Date(clock.now()) });
        return payload;
      } catch (err) {
        throw new InvalidArgumentError('token', token.slice(0, 16) + '…', `not a valid token: ${(err as Error).message}`, { cause: err });
      }
    },
  };
}

function b64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** Formats like Go's `time.RFC3339Nano` in UTC (`2024-01-02T03:04:05.5Z`; no fraction when zero). */
export function formatRfc3339Nano(d: Date): string {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:mm:ss.sssZ
  const [base, frac] = iso.slice(0, -1).split('.');
  const f = (frac ?? '').replace(/0+$/, '');
  return f === '' ? `${base}Z` : `${base}.${f}Z`;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$/;

/** Parses RFC3339 / RFC3339Nano (nanoseconds truncated to ms). `field` names the value in errors. */
export function parseRfc3339Nano(s: string, field = 'time'): Date {
  const m = RFC3339.exec(s.trim());
  if (!m) throw new InvalidArgumentError(field, s, 'expected an RFC3339 time like 2006-01-02T15:04:05.999999999Z');
  const ms = (m[3] ?? '').padEnd(3, '0').slice(0, 3);
  const zone = m[4] === 'z' ? 'Z' : m[4];
  const d = new Date(`${m[1]}T${m[2]}.${ms}${zone}`);
  if (Number.isNaN(d.getTime())) throw new InvalidArgumentError(field, s, 'not a valid date');
  return d;
}

/** The per-RPC token metadata a client sends on every NSM call (upstream `token.NewPerRPCCredentials`). */
export function clientTokenMetadata(issued: IssuedToken): Record<string, string> {
  return { [MD_CLIENT_TOKEN]: issued.token, [MD_CLIENT_TOKEN_EXPIRES]: formatRfc3339Nano(issued.expires) };
}

/**
 * The caller's token from incoming metadata (upstream `token.FromContext`): undefined when the call carries
 * none (an in-process call, or a peer without per-RPC credentials). A token without a readable expiry, or
 * one longer than MAX_TOKEN_LENGTH, is an InvalidArgumentError naming the metadata key.
 */
export function readClientToken(metadata: Readonly<Record<string, string>>): IssuedToken | undefined {
  const token = metadata[MD_CLIENT_TOKEN];
  if (token === undefined || token === '') return undefined;
  if (token.length > MAX_TOKEN_LENGTH) throw new InvalidArgumentError(MD_CLIENT_TOKEN, token, `longer than ${MAX_TOKEN_LENGTH} characters (${token.length})`);
  const expires = metadata[MD_CLIENT_TOKEN_EXPIRES];
  if (expires === undefined) throw new InvalidArgumentError(MD_CLIENT_TOKEN_EXPIRES, expires, `missing, though ${MD_CLIENT_TOKEN} is set`);
  return { token, expires: parseRfc3339Nano(expires, MD_CLIENT_TOKEN_EXPIRES) };
}
