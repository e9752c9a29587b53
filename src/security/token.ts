/**
 * ES256 path tokens as upstream makes them (`sdk:pkg/tools/spiffejwt`, golang-jwt v4): a compact JWS with
 * header `{"alg":"ES256","typ":"JWT"}` and claims exactly `sub` (own SPIFFE ID), `aud` (a JSON array with
 * the peer's SPIFFE ID, left out when the call has no peer certificate) and `exp` (whole seconds), signed
 * with the SVID's P-256 key (signature `r‖s`, 64 bytes). No `iat`, no `nbf`: upstream's policies read only
 * `sub`, `aud` and `exp`.
 *
 * `exp` is the earliest of now + maxTokenLifetime, the own SVID's NotAfter and the peer's NotAfter. (Upstream
 * returns that earliest time as the expiry but puts the time before the peer's NotAfter into the claim; the
 * claim here is the earliest of the three, so token and metadata expiry agree.)
 *
 * The generator reads the SVID from its X509Source at every call, so the token after a rotation is signed
 * with the new key. Signing is synchronous node:crypto (one per hop of every Request and Close); jose is
 * only used by the tests, to show that each side accepts the other's tokens.
 */
import { sign, verify, X509Certificate, type KeyObject } from 'node:crypto';
import { MAX_TOKEN_LENGTH } from '../api/limits.js';
import { realClock, type Clock } from '../core/clock.js';
import { InvalidArgumentError } from '../core/errors.js';
import { DEFAULT_MAX_TOKEN_LIFETIME_MS, type IssuedToken, type TokenGenerator, type TokenRequest } from '../core/token.js';
import { parseSpiffeId } from './spiffe-id.js';
import type { X509Source, X509Svid } from './svid.js';
import { certInfo, spiffeIdOf } from './x509.js';

export { DEFAULT_MAX_TOKEN_LIFETIME_MS };
/** Bounds of maxTokenLifetime: 1 s to 30 days (upstream programs use 10 min or 24 h). */
export const MIN_TOKEN_LIFETIME_MS = 1000;
export const MAX_TOKEN_LIFETIME_MS = 30 * 24 * 3600_000;

export const ES256_HEADER = Object.freeze({ alg: 'ES256', typ: 'JWT' });
const HEADER_B64 = Buffer.from(JSON.stringify(ES256_HEADER)).toString('base64url');
const P256 = 'prime256v1';
const B64URL = /^[A-Za-z0-9_-]*$/;

export interface PathTokenClaims {
  readonly sub: string;
  /** One entry, the peer's SPIFFE ID; absent when the token is not for a known peer. */
  readonly aud?: readonly string[];
  /** Seconds since the epoch. */
  readonly exp: number;
}

export interface DecodedToken {
  readonly header: Readonly<Record<string, unknown>>;
  /** The claims as sent; not checked beyond being a JSON object (policies read what they need). */
  readonly payload: Readonly<Record<string, unknown>>;
  /** `<header>.<payload>` as received, the signed bytes. */
  readonly signingInput: string;
  readonly signature: Buffer;
}

/** What is wrong with a token. */
export type TokenProblem = 'malformed' | 'wrong-algorithm' | 'bad-signature' | 'unusable-key';

/** A token could not be decoded or verified. An InvalidArgumentError (field `token`) with a `problem`. */
export class TokenError extends InvalidArgumentError {
  override name = 'TokenError';
  constructor(
    readonly problem: TokenProblem,
    token: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    // A token is a credential: errors show its start (the header) and its length, not all of it.
    super('token', token.length > 24 ? `${token.slice(0, 24)}… (${token.length} characters)` : token, reason, options);
  }
}

function jsonPart(token: string, part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch (err) {
    throw new TokenError('malformed', token, `the ${what} is not base64url JSON`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TokenError('malformed', token, `the ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** Splits and decodes a compact JWS without verifying it (OPA's `io.jwt.decode`). Throws TokenError. */
export function decodeToken(token: string): DecodedToken {
  if (typeof token !== 'string' || token === '') throw new TokenError('malformed', String(token ?? ''), 'empty');
  if (token.length > MAX_TOKEN_LENGTH) throw new TokenError('malformed', token, `longer than ${MAX_TOKEN_LENGTH} characters`);
  const parts = token.split('.');
  if (parts.length !== 3) throw new TokenError('malformed', token, `expected 3 dot-separated parts, got ${parts.length}`);
  if (!parts.every((p) => B64URL.test(p))) throw new TokenError('malformed', token, 'a part is not base64url');
  const header = jsonPart(token, parts[0], 'header');
  const payload = jsonPart(token, parts[1], 'payload');
  return { header, payload, signingInput: `${parts[0]}.${parts[1]}`, signature: Buffer.from(parts[2], 'base64url') };
}

function isP256(key: KeyObject): boolean {
  return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === P256;
}

/**
 * Verifies the ES256 signature of `token` with `key` (a P-256 public key, or the certificate carrying it) —
 * OPA's `io.jwt.verify_es256`. Checks the signature and `alg` only; expiry is the `tokens_expired` policy's.
 * Returns the decoded token; throws TokenError.
 */
export function verifyToken(token: string, key: KeyObject | X509Certificate): DecodedToken {
  const decoded = decodeToken(token);
  if (decoded.header.alg !== 'ES256') throw new TokenError('wrong-algorithm', token, `alg is ${JSON.stringify(decoded.header.alg)}, expected "ES256"`);
  const publicKey = key instanceof X509Certificate ? key.publicKey : key;
  if (!isP256(publicKey)) throw new TokenError('unusable-key', token, `the key to verify with is not EC P-256 (${publicKey.asymmetricKeyType})`);
  if (decoded.signature.length !== 64) throw new TokenError('bad-signature', token, `the signature is ${decoded.signature.length} bytes, ES256 has 64`);
  const ok = verify('sha256', Buffer.from(decoded.signingInput), { key: publicKey, dsaEncoding: 'ieee-p1363' }, decoded.signature);
  if (!ok) throw new TokenError('bad-signature', token, 'the signature does not match the key');
  return decoded;
}

/** Signs `claims` (in upstream's order: sub, aud, exp) with a P-256 private key. */
export function signToken(claims: PathTokenClaims, privateKey: KeyObject): string {
  const body = claims.aud && claims.aud.length > 0 ? { sub: claims.sub, aud: claims.aud, exp: claims.exp } : { sub: claims.sub, exp: claims.exp };
  const signingInput = `${HEADER_B64}.${Buffer.from(JSON.stringify(body)).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${signingInput}.${signature.toString('base64url')}`;
}

/**
 * The `sub` of a token when it is a SPIFFE ID, without verifying the token (upstream's `getIDFromToken`:
 * an unverified parse, then `spiffeid.FromString`); undefined otherwise.
 */
export function tokenSubject(token: string): string | undefined {
  try {
    const sub = decodeToken(token).payload.sub;
    return typeof sub === 'string' ? parseSpiffeId(sub).id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Who a token for the TLS peer `cert` is for: its SPIFFE ID (`aud`) and NotAfter. An InvalidArgumentError
 * when the certificate has no SPIFFE ID (upstream's generator fails the same way).
 */
export function tokenRequestFor(cert: X509Certificate): TokenRequest {
  return { audience: spiffeIdOf(cert, 'peer certificate'), peerNotAfter: certInfo(cert, 'peer certificate').notAfter };
}

/**
 * A token for the peer of an mTLS connection (security/tls.ts `PeerIdentity`): `tokenRequestFor` its
 * certificate, signed with the SVID we presented on that connection when it is known.
 */
export function tokenRequestForPeer(peer: { readonly certificate: X509Certificate; readonly presented?: X509Svid }): TokenRequest {
  const req = tokenRequestFor(peer.certificate);
  return peer.presented ? { ...req, signer: peer.presented } : req;
}

export interface Es256TokenOptions {
  /** Upper bound of a token's lifetime (ms), upstream `NSM_MAX_TOKEN_LIFETIME`. Default 10 minutes. */
  readonly maxTokenLifetime?: number;
  readonly clock?: Clock;
}

export interface Es256TokenGenerator extends TokenGenerator {
  /** The same as `generate`, synchronously (throws what `generate` rejects with). */
  issue(opts?: TokenRequest): IssuedToken;
}

function checkRequest(opts: TokenRequest): void {
  if (opts.audience !== undefined && opts.audience !== '') parseSpiffeId(opts.audience, 'audience');
  if (opts.peerNotAfter !== undefined && Number.isNaN(opts.peerNotAfter.getTime())) {
    throw new InvalidArgumentError('peerNotAfter', String(opts.peerNotAfter), 'not a valid date');
  }
}

/**
 * Upstream's token generator: ES256 with the SVID of `source` (read at every call). Rejects with the
 * source's UnavailableError before the first SVID, and with an InvalidArgumentError when the SVID key is
 * not EC P-256 or the request's audience is not a SPIFFE ID.
 */
export function es256TokenGenerator(source: X509Source, options: Es256TokenOptions = {}): Es256TokenGenerator {
  const lifetime = options.maxTokenLifetime ?? DEFAULT_MAX_TOKEN_LIFETIME_MS;
  if (!Number.isFinite(lifetime) || lifetime < MIN_TOKEN_LIFETIME_MS || lifetime > MAX_TOKEN_LIFETIME_MS) {
    throw new InvalidArgumentError('maxTokenLifetime', lifetime, `must be between ${MIN_TOKEN_LIFETIME_MS} ms and ${MAX_TOKEN_LIFETIME_MS} ms`);
  }
  const clock = options.clock ?? realClock;
  const checkedKeys = new WeakSet<KeyObject>();
  // the SVIDs this source has given: the only ones a request's `signer` may name
  const own = new WeakSet<X509Svid>();
  source.onUpdate((m) => void own.add(m.svid));
  const issue = (opts: TokenRequest = {}): IssuedToken => {
    checkRequest(opts);
    const current = source.current().svid;
    own.add(current);
    // the SVID presented on the token's connection, when it is one this source gave (else the current one)
    const svid = opts.signer && own.has(opts.signer) && opts.signer.spiffeId === current.spiffeId ? opts.signer : current;
    if (!checkedKeys.has(svid.privateKey)) {
      if (!isP256(svid.privateKey)) throw new InvalidArgumentError('svid.privateKey', svid.privateKey.asymmetricKeyType, 'path tokens are ES256: the SVID key must be EC P-256');
      checkedKeys.add(svid.privateKey);
    }
    const expMs = Math.min(clock.now() + lifetime, current.notAfter.getTime(), opts.peerNotAfter?.getTime() ?? Infinity);
    const exp = Math.floor(expMs / 1000);
    const token = signToken({ sub: svid.spiffeId, aud: opts.audience ? [opts.audience] : undefined, exp }, svid.privateKey);
    return { token, expires: new Date(exp * 1000) };
  };
  return {
    issue,
    generate(opts) {
      try {
        return Promise.resolve(issue(opts));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    },
  };
}
