/**
 * SPIFFE IDs as the SPIFFE-ID standard defines them (`spiffe://<trust-domain><path>`): the trust domain is
 * lower-case letters, digits, `.`, `-`, `_`; the path is `/`-separated segments of letters, digits, `.`,
 * `-`, `_`, none empty, `.` or `..`, no trailing `/`; no port, user, query or fragment; at most 2048 bytes.
 * Checked strictly, as go-spiffe does, because a certificate's URI SAN is the identity the mesh authorizes
 * by: `spiffe://Example.org/x` or `spiffe://td/a/../b` must not pass as an identity.
 */
import { InvalidArgumentError } from '../core/errors.js';

export const MAX_SPIFFE_ID_LENGTH = 2048;
export const MAX_TRUST_DOMAIN_LENGTH = 255;

export interface SpiffeId {
  readonly id: string;
  readonly trustDomain: string;
  /** `''` for a trust domain's own ID, else `/seg/…`. */
  readonly path: string;
}

const TD_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[a-zA-Z0-9._-]+$/;

/** Why `td` is not a trust domain name, or undefined when it is one. */
export function trustDomainProblem(td: string): string | undefined {
  if (td === '') return 'the trust domain is empty';
  if (td.length > MAX_TRUST_DOMAIN_LENGTH) return `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`;
  if (!TD_CHARS.test(td)) return 'the trust domain may hold only a-z, 0-9, ".", "-" and "_"';
  return undefined;
}

/** Parses and checks a SPIFFE ID; `field` names the input in the error. */
export function parseSpiffeId(value: string, field = 'spiffe_id'): SpiffeId {
  const fail = (reason: string) => new InvalidArgumentError(field, value, reason);
  if (typeof value !== 'string' || value === '') throw fail('a SPIFFE ID is required');
  if (Buffer.byteLength(value) > MAX_SPIFFE_ID_LENGTH) throw fail(`a SPIFFE ID is at most ${MAX_SPIFFE_ID_LENGTH} bytes`);
  if (!value.startsWith('spiffe://')) throw fail('a SPIFFE ID starts with "spiffe://"');
  const rest = value.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const td = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  const tdProblem = trustDomainProblem(td);
  if (tdProblem) throw fail(tdProblem);
  if (path !== '') {
    const segments = path.slice(1).split('/');
    for (const s of segments) {
      if (s === '') throw fail('the path has an empty segment or a trailing "/"');
      if (s === '.' || s === '..') throw fail('the path may not hold "." or ".." segments');
      if (!SEGMENT_CHARS.test(s)) throw fail('path segments may hold only letters, digits, ".", "-" and "_"');
    }
  }
  return { id: value, trustDomain: td, path };
}

/**
 * The trust domain name a Workload API bundle map key names: go-spiffe accepts both the bare name
 * (`example.org`) and the trust domain's SPIFFE ID (`spiffe://example.org`).
 */
export function parseTrustDomainKey(key: string, field: string): string {
  const td = key.startsWith('spiffe://') ? key.slice('spiffe://'.length) : key;
  const problem = trustDomainProblem(td);
  if (problem) throw new InvalidArgumentError(field, key, problem);
  return td;
}
