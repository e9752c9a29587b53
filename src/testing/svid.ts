/**
 * Test identities: a real X.509-SVID (a self-signed leaf with one URI SAN, made by the `openssl` binary
 * from a node:crypto key) and an in-memory X509Source that can rotate it. For unit tests of the token and
 * policy code, which need real keys and certificates but no CA or Workload API.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnavailableError } from '../core/errors.js';
import type { Unsubscribe, X509Material, X509Source, X509Svid } from '../security/svid.js';

export interface TestSvidOptions {
  /** Days until NotAfter (openssl `-days`). Default 1. */
  readonly days?: number;
  /** Default 'P-256'. */
  readonly curve?: string;
}

/** A self-signed SVID for `spiffeId` with a fresh EC key. */
export function makeTestSvid(spiffeId: string, options: TestSvidOptions = {}): X509Svid {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: options.curve ?? 'P-256' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const dir = mkdtempSync(join(tmpdir(), 'nsm-ts-svid-'));
  try {
    writeFileSync(join(dir, 'key.pem'), keyPem, { mode: 0o600 });
    execFileSync('openssl', ['req', '-x509', '-new', '-key', join(dir, 'key.pem'), '-subj', '/CN=nsm-ts-test', '-addext', `subjectAltName=URI:${spiffeId}`, '-days', String(options.days ?? 1), '-out', join(dir, 'cert.pem')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const certChainPem = readFileSync(join(dir, 'cert.pem'), 'utf8');
    return svidOf(spiffeId, certChainPem, keyPem, privateKey);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function svidOf(spiffeId: string, certChainPem: string, keyPem: string, privateKey: KeyObject): X509Svid {
  const leaf = new X509Certificate(certChainPem);
  return { spiffeId, certChainPem, keyPem, leaf, privateKey, notAfter: new Date(leaf.validTo) };
}

export interface TestX509Source extends X509Source {
  /** Replaces the SVID (a rotation) and tells the listeners. */
  rotate(svid: X509Svid): void;
}

/** An X509Source over a given SVID (none: `current()` throws UnavailableError until `rotate`). */
export function testX509Source(svid?: X509Svid): TestX509Source {
  let material: X509Material | undefined = svid ? { svid, bundles: new Map() } : undefined;
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
      material = { svid: next, bundles: new Map() };
      for (const l of listeners) l(material);
    },
  };
}
