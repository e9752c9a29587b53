/**
 * Workload identity as the rest of nsm-ts sees it: an X.509-SVID (leaf certificate with one URI SAN
 * `spiffe://<trust-domain>/<path>`, its chain and its private key) and the trust bundles to verify peers
 * against. Where it comes from — the SPIFFE Workload API of SPIRE, or the mesh's embedded issuer — is behind
 * `X509Source`; mTLS (security/tls.ts) and path tokens (security/token.ts) read it from there and pick up a
 * rotation without dropping anything that is live.
 */
import type { KeyObject, X509Certificate } from 'node:crypto';
import { parseSpiffeId } from './spiffe-id.js';

export interface X509Svid {
  /** `spiffe://<trust-domain>/<path>`, the leaf's one URI SAN. */
  readonly spiffeId: string;
  /** The leaf first, then intermediates (not the root), PEM. */
  readonly certChainPem: string;
  /** PKCS#8 PEM of the leaf's private key (EC P-256 from SPIRE and from the embedded issuer). */
  readonly keyPem: string;
  readonly leaf: X509Certificate;
  readonly privateKey: KeyObject;
  readonly notAfter: Date;
}

export interface X509Material {
  readonly svid: X509Svid;
  /** Trust bundles by trust domain name (`example.org`, no scheme): the root CA certificates, PEM. */
  readonly bundles: ReadonlyMap<string, string>;
}

export type Unsubscribe = () => void;

export interface X509Source {
  /** The material as of now; throws UnavailableError before the first SVID arrived. */
  current(): X509Material;
  /** Resolves with the first material (at once when it is there); rejects when `signal` aborts or the source closes. */
  ready(signal?: AbortSignal): Promise<X509Material>;
  /** Called with each new material (rotation, bundle change), after `current()` returns it. */
  onUpdate(listener: (material: X509Material) => void): Unsubscribe;
  close(): void;
}

/** The trust domain of a SPIFFE ID (`spiffe://td/path` → `td`); undefined when `id` is not one (spiffe-id.ts rules). */
export function trustDomainOf(id: string): string | undefined {
  try {
    return parseSpiffeId(id).trustDomain;
  } catch {
    return undefined;
  }
}
