/**
 * Upstream NSM's authorization policies (sdk `pkg/tools/opa/policies/**.rego`, v1.18.0) as small pure
 * functions over plain inputs — a path's tokens, the index of this hop, the TLS peer's key, the time — each
 * returning undefined (allowed) or a Refusal naming the policy, the path segment and the reason.
 *
 * | policy                    | rego                              | allowed when                                        |
 * |---------------------------|-----------------------------------|-----------------------------------------------------|
 * | `tokens_valid`            | common/tokens_valid.rego          | every token decodes as a JWT (an empty path is ok)   |
 * | `tokens_expired`          | common/tokens_expired.rego        | now < `exp` for every token                          |
 * | `tokens_chained`          | common/tokens_chained.rego        | `aud` (an array) of segment i contains `sub` of i+1  |
 * | `prev_token_signed`       | server/prev_token_signed.rego     | token of segment index-1 verifies with the peer key  |
 * | `next_token_signed`       | client/next_token_signed.rego     | token of segment index+1 verifies with the peer key  |
 * | `registry_client_allowed` | registry/client_allowed.rego      | new name, or caller = first of the name's path_ids   |
 *
 * Where they apply (upstream `authorize`): a server checks the left side of the path (segments 0..index)
 * with common + prev; a client checks the whole returned path with common + next; a registry server adds
 * `registry_client_allowed` to the server set, a registry client to the client set. Common policies run
 * first in the order valid, expired, chained (upstream runs its files alphabetically; the order only
 * decides which refusal is reported when several apply).
 *
 * One deliberate difference: with `forClose` (Close, Unregister) an expired token is allowed and reported
 * as a note the caller logs — a Close must always be able to clean up (upstream users were hurt when it
 * could not). A refusal becomes a PolicyDeniedError (a PermissionDeniedError) that names policy and
 * segment; `enforce` logs it once, at the hop that refuses, and throws it (the hops before pass it on
 * without logging it again).
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { PermissionDeniedError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { decodeToken, tokenSubject, verifyToken, TokenError, type DecodedToken } from './token.js';

export type PolicyName = 'tokens_valid' | 'tokens_expired' | 'tokens_chained' | 'prev_token_signed' | 'next_token_signed' | 'registry_client_allowed';

/** A path segment as the policies see it: a connection's PathSegment or a registry path segment. */
export interface TokenSegment {
  readonly token: string;
  /** The hop's name, when the path carries names (connection paths do, registry paths do not). */
  readonly name?: string;
}

export interface PathPolicyInput {
  readonly segments: readonly TokenSegment[];
  /** This hop's index in `segments`. */
  readonly index: number;
  /** The TLS peer (server side: the caller; client side: the server): its certificate or public key. */
  readonly peer?: X509Certificate | KeyObject;
  /** Epoch ms. */
  readonly now: number;
}

export interface RegistryPolicyInput extends PathPolicyInput {
  /** The NetworkService or endpoint name being registered, refreshed or unregistered. */
  readonly resourceName: string;
  /** `path_ids` recorded for `resourceName` by an earlier registration; undefined when the name is new. */
  readonly existingPathIds?: readonly string[];
}

export interface Refusal {
  readonly policy: PolicyName;
  /** The path segment the refusal is about. */
  readonly segment: number;
  readonly segmentName?: string;
  readonly reason: string;
}

export interface Policy<I> {
  readonly name: PolicyName;
  readonly check: (input: I, notes?: string[]) => Refusal | undefined;
}

export interface PolicyOptions {
  /** Close / Unregister: an expired token is allowed, with a note for the log. */
  readonly forClose?: boolean;
}

export interface PolicyVerdict {
  /** The first refusal; undefined when every policy allowed the call. */
  readonly refusal?: Refusal;
  /** What was allowed only because of `forClose`, for the caller to log. */
  readonly notes: readonly string[];
}

function refuse(policy: PolicyName, input: PathPolicyInput, segment: number, reason: string): Refusal {
  const name = input.segments[segment]?.name;
  return name ? { policy, segment, segmentName: name, reason } : { policy, segment, reason };
}

function reasonOf(err: unknown): string {
  return err instanceof TokenError ? err.reason : err instanceof Error ? err.message : String(err);
}

/** Decodes a segment's token, or returns the refusal of `policy` for it. */
function decodeFor(policy: PolicyName, input: PathPolicyInput, i: number): DecodedToken | Refusal {
  try {
    return decodeToken(input.segments[i].token);
  } catch (err) {
    return refuse(policy, input, i, `the token is not a JWT: ${reasonOf(err)}`);
  }
}

function isRefusal(v: DecodedToken | Refusal): v is Refusal {
  return 'policy' in v;
}

/** `tokens_valid`: every segment's token decodes as a JWT. */
export function tokensValid(input: PathPolicyInput): Refusal | undefined {
  for (let i = 0; i < input.segments.length; i++) {
    const d = decodeFor('tokens_valid', input, i);
    if (isRefusal(d)) return d;
  }
  return undefined;
}

/**
 * `tokens_expired`: now < `exp` for every segment (a token without a numeric `exp` is refused too). With
 * `notes`, an expired token is allowed and described there instead (Close).
 */
export function tokensExpired(input: PathPolicyInput, notes?: string[]): Refusal | undefined {
  for (let i = 0; i < input.segments.length; i++) {
    const d = decodeFor('tokens_expired', input, i);
    if (isRefusal(d)) return d;
    const exp = d.payload.exp;
    if (typeof exp !== 'number' || !Number.isFinite(exp)) return refuse('tokens_expired', input, i, `the token has no numeric exp (got ${JSON.stringify(exp)})`);
    if (input.now < exp * 1000) continue;
    const when = `expired at ${new Date(exp * 1000).toISOString()} (now ${new Date(input.now).toISOString()})`;
    if (!notes) return refuse('tokens_expired', input, i, `the token ${when}`);
    notes.push(`Close with an expired token of segment ${i}: allowed, cleaning up (${when})`);
  }
  return undefined;
}

/** `tokens_chained`: for each adjacent pair, `aud` of segment i is an array that contains `sub` of i+1. */
export function tokensChained(input: PathPolicyInput): Refusal | undefined {
  for (let i = 0; i + 1 < input.segments.length; i++) {
    const a = decodeFor('tokens_chained', input, i);
    if (isRefusal(a)) return a;
    const b = decodeFor('tokens_chained', input, i + 1);
    if (isRefusal(b)) return b;
    const aud = a.payload.aud;
    const sub = b.payload.sub;
    if (typeof sub !== 'string') return refuse('tokens_chained', input, i + 1, `the token has no sub to chain to (got ${JSON.stringify(sub)})`);
    if (!Array.isArray(aud)) return refuse('tokens_chained', input, i, `aud is not an array (got ${JSON.stringify(aud)}), so it cannot name segment ${i + 1}`);
    if (!aud.includes(sub)) return refuse('tokens_chained', input, i, `aud ${JSON.stringify(aud)} does not contain sub "${sub}" of segment ${i + 1}`);
  }
  return undefined;
}

function signedByPeer(policy: PolicyName, input: PathPolicyInput, i: number): Refusal | undefined {
  if (i >= input.segments.length) return refuse(policy, input, i, `the path has no segment ${i} (${input.segments.length} segments, index ${input.index})`);
  if (!input.peer) return refuse(policy, input, i, 'no peer certificate to verify the token with (a call without TLS)');
  try {
    verifyToken(input.segments[i].token, input.peer);
    return undefined;
  } catch (err) {
    return refuse(policy, input, i, `the token is not signed by the peer: ${reasonOf(err)}`);
  }
}

/** `prev_token_signed` (server): the token of segment index-1 verifies with the caller's key. */
export function prevTokenSigned(input: PathPolicyInput): Refusal | undefined {
  if (input.index < 1) return refuse('prev_token_signed', input, input.index, `no previous segment at index ${input.index}`);
  return signedByPeer('prev_token_signed', input, input.index - 1);
}

/** `next_token_signed` (client): the token of segment index+1 of the returned path verifies with the server's key. */
export function nextTokenSigned(input: PathPolicyInput): Refusal | undefined {
  return signedByPeer('next_token_signed', input, input.index + 1);
}

/** The caller of a registry call: the `sub` of the first segment's token (upstream `getSpiffeIDFromPath`); '' when unreadable. */
export function registryCallerId(segments: readonly TokenSegment[]): string {
  return segments.length > 0 ? (tokenSubject(segments[0].token) ?? '') : '';
}

/**
 * `registry_client_allowed`: a name nobody registered is always allowed; a refresh or unregister of a
 * known name only when the caller is the first identity of its `path_ids` (the original registrant). A
 * caller without a readable identity is refused for a known name.
 */
export function registryClientAllowed(input: RegistryPolicyInput): Refusal | undefined {
  const existing = input.existingPathIds;
  if (existing === undefined) return undefined;
  const caller = registryCallerId(input.segments);
  if (caller !== '' && existing[0] === caller) return undefined;
  const who = caller === '' ? 'a caller without a readable identity' : `"${caller}"`;
  return refuse('registry_client_allowed', input, 0, `${who} is not the registrant of "${input.resourceName}" (path_ids ${JSON.stringify(existing)})`);
}

function policy<I>(name: PolicyName, check: (input: I, notes?: string[]) => Refusal | undefined): Policy<I> {
  return Object.freeze({ name, check });
}

export const COMMON_POLICIES: readonly Policy<PathPolicyInput>[] = Object.freeze([
  policy('tokens_valid', tokensValid),
  policy('tokens_expired', tokensExpired),
  policy('tokens_chained', tokensChained),
]);
export const SERVER_POLICIES: readonly Policy<PathPolicyInput>[] = Object.freeze([...COMMON_POLICIES, policy('prev_token_signed', prevTokenSigned)]);
export const CLIENT_POLICIES: readonly Policy<PathPolicyInput>[] = Object.freeze([...COMMON_POLICIES, policy('next_token_signed', nextTokenSigned)]);
const REGISTRY_ALLOWED = policy<RegistryPolicyInput>('registry_client_allowed', registryClientAllowed);
export const REGISTRY_SERVER_POLICIES: readonly Policy<RegistryPolicyInput>[] = Object.freeze([...COMMON_POLICIES, REGISTRY_ALLOWED, policy('prev_token_signed', prevTokenSigned)]);
export const REGISTRY_CLIENT_POLICIES: readonly Policy<RegistryPolicyInput>[] = Object.freeze([...COMMON_POLICIES, REGISTRY_ALLOWED, policy('next_token_signed', nextTokenSigned)]);

/** Runs `policies` in order and stops at the first refusal. */
export function checkPolicies<I extends PathPolicyInput>(policies: readonly Policy<I>[], input: I, options: PolicyOptions = {}): PolicyVerdict {
  const notes: string[] = [];
  for (const p of policies) {
    const refusal = p.name === 'tokens_expired' && options.forClose ? p.check(input, notes) : p.check(input);
    if (refusal) return { refusal, notes };
  }
  return { notes };
}

/** The part of the path a server judges: segments 0..index (upstream's "left side"). */
export function leftSide<I extends PathPolicyInput>(input: I): I {
  return input.index + 1 >= input.segments.length ? input : { ...input, segments: input.segments.slice(0, input.index + 1) };
}

/** Server side of a Request or Close: common + prev on the left side of the path. */
export function authorizeServer(input: PathPolicyInput, options?: PolicyOptions): PolicyVerdict {
  return checkPolicies(SERVER_POLICIES, leftSide(input), options);
}

/** Client side, on the path the server returned: common + next on the whole path. */
export function authorizeClient(input: PathPolicyInput, options?: PolicyOptions): PolicyVerdict {
  return checkPolicies(CLIENT_POLICIES, input, options);
}

/** Registry server (Register; Unregister with forClose): common + client allowed + prev, on the left side. */
export function authorizeRegistryServer(input: RegistryPolicyInput, options?: PolicyOptions): PolicyVerdict {
  return checkPolicies(REGISTRY_SERVER_POLICIES, leftSide(input), options);
}

/** Registry client, on the path of the response header: common + client allowed + next. */
export function authorizeRegistryClient(input: RegistryPolicyInput, options?: PolicyOptions): PolicyVerdict {
  return checkPolicies(REGISTRY_CLIENT_POLICIES, input, options);
}

/** `policy tokens_expired refused path segment 2 (nsmgr-1): the token expired at …`. */
export function describeRefusal(r: Refusal): string {
  return `policy ${r.policy} refused path segment ${r.segment}${r.segmentName ? ` (${r.segmentName})` : ''}: ${r.reason}`;
}

/** A refusal as an error: PERMISSION_DENIED at the server edge, with the policy and segment in the message. */
export class PolicyDeniedError extends PermissionDeniedError {
  readonly policy: PolicyName;
  readonly segment: number;
  constructor(
    readonly refusal: Refusal,
    options?: { cause?: unknown },
  ) {
    super(describeRefusal(refusal), options);
    this.policy = refusal.policy;
    this.segment = refusal.segment;
  }
}

export function refusalError(refusal: Refusal): PolicyDeniedError {
  return new PolicyDeniedError(refusal);
}

/**
 * What an authorize element does with a verdict: logs each note (info), and for a refusal logs it once
 * (warn, with policy, segment and reason as fields) and throws it as a PolicyDeniedError.
 */
export function enforce(verdict: PolicyVerdict, log: Logger): void {
  for (const note of verdict.notes) log.info(note);
  const r = verdict.refusal;
  if (!r) return;
  log.warn({ policy: r.policy, segment: r.segment, segmentName: r.segmentName, reason: r.reason }, 'permission denied by policy');
  throw refusalError(r);
}
