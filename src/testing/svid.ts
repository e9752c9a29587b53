/**
 * Test identities: real X.509-SVIDs issued by the embedded CA (security/ca.ts; one CA per trust domain,
 * made on first use) and an in-memory X509Source that can rotate them. For unit tests of the token and
 * policy code, which need real keys and certificates but no Workload API.
 */
import { generateKeyPairSync } from 'node:crypto';
import { UnavailableError } from '../core/errors.js';
import { createCa, type EmbeddedCa } from '../security/ca.js';
import { parseSpiffeId } from '../security/spiffe-id.js';
import type { Unsubscribe, X509Material, X509Source, X509Svid } from '../security/svid.js';

export interface TestSvidOptions {
  /** Lifetime (ms); the CA's default (1 hour) when absent. */
  readonly ttlMs?: number;
  /** Curve of the SVID key. Default 'P-256'. */
  readonly curve?: string;
}

const cas = new Map<string, EmbeddedCa>();

/** The test CA of a trust domain. */
export function testCa(trustDomain: string): EmbeddedCa {
  let ca = cas.get(trustDomain);
  if (!ca) cas.set(trustDomain, (ca = createCa({ trustDomain })));
  return ca;
}

/** An X.509-SVID for `spiffeId` with a fresh EC key, issued by its trust domain's test CA. */
export function makeTestSvid(spiffeId: string, options: TestSvidOptions = {}): X509Svid {
  const { trustDomain } = parseSpiffeId(spiffeId, 'spiffeId');
  const privateKey = options.curve ? generateKeyPairSync('ec', { namedCurve: options.curve }).privateKey : undefined;
  return testCa(trustDomain).issue({ spiffeId, ttlMs: options.ttlMs, privateKey });
}

export interface TestX509Source extends X509Source {
  /** Replaces the SVID (a rotation) and tells the listeners. */
  rotate(svid: X509Svid): void;
}

/** An X509Source over a given SVID (none: `current()` throws UnavailableError until `rotate`). */
export function testX509Source(svid?: X509Svid): TestX509Source {
  const bundles = (s: X509Svid) => testCa(parseSpiffeId(s.spiffeId, 'spiffeId').trustDomain).bundles;
  let material: X509Material | undefined = svid ? { svid, bundles: bundles(svid) } : undefined;
  const listeners = new Set<(m: X509Material) => void>();
  return {
    current() {
      if (!material) throw new UnavailableError('no X.509-SVID yet');
      return material;
    },
    ready() {
      return material ? Promise.resolve(material) : Promise.reject(new UnavailableError('no X.509-SVID yet'));
    },
    onUpdate(listener): Unsubscribe {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    close() {
      listeners.clear();
    },
    rotate(next) {
      material = { svid: next, bundles: bundles(next) };
      for (const l of listeners) l(material);
    },
  };
}
