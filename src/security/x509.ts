/**
 * X.509-SVIDs: parsing (the Workload API's concatenated DER certificates and PKCS#8 DER key, or PEM) into
 * the `X509Svid` of svid.ts, validated as the X.509-SVID standard and go-spiffe's `x509svid.ParseRaw`
 * require (leaf with exactly one URI SAN that is a SPIFFE ID, not a CA, `digitalSignature` and neither
 * `keyCertSign` nor `cRLSign`; intermediates are CAs that may sign certificates; the key is the leaf's),
 * and `verifySvidChain`, which checks a peer's chain up to a root of the bundle of the leaf's own trust
 * domain (go-spiffe's `x509svid.Verify`) and says in a typed error why it does not.
 *
 * Node's X509Certificate does the signature work (`verify`, `checkIssued`, which also matches names and
 * key identifiers); the extensions and validity come from der.ts, read once per certificate and cached.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { InvalidArgumentError, PermissionDeniedError, errorMessage } from '../core/errors.js';
import { TAG, children, decodeNamedBits, decodeOid, decodeTime, expectTag, readTlv } from './der.js';
import { parseSpiffeId, parseTrustDomainKey } from './spiffe-id.js';
import type { X509Svid } from './svid.js';

/** Most certificates an SVID chain (leaf + intermediates) or one trust bundle may hold. */
export const MAX_CHAIN_CERTS = 16;
export const MAX_BUNDLE_CERTS = 256;

export const KEY_USAGE = {
  digitalSignature: 0,
  keyEncipherment: 2,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
} as const;

export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  organizationName: '2.5.4.10',
  commonName: '2.5.4.3',
} as const;

/** What x509.ts reads from a certificate beyond what Node's X509Certificate offers. */
export interface CertInfo {
  readonly uris: readonly string[];
  readonly isCa: boolean;
  /** Set bits of the KeyUsage extension; undefined when the certificate has none. */
  readonly keyUsage: ReadonlySet<number> | undefined;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const infoCache = new WeakMap<X509Certificate, CertInfo>();

/** The extensions and validity of `cert` (read once, cached per object). */
export function certInfo(cert: X509Certificate, field = 'certificate'): CertInfo {
  let info = infoCache.get(cert);
  if (!info) {
    info = readCertInfo(cert.raw, field);
    infoCache.set(cert, info);
  }
  return info;
}

function readCertInfo(der: Buffer, field: string): CertInfo {
  const top = expectTag(readTlv(der, 0, field), TAG.SEQUENCE, 'Certificate', field);
  const tbs = expectTag(children(top.content, field)[0], TAG.SEQUENCE, 'TBSCertificate', field);
  const parts = children(tbs.content, field);
  const base = parts[0]?.tag === 0xa0 ? 1 : 0; // [0] version
  const validity = children(expectTag(parts[base + 3], TAG.SEQUENCE, 'Validity', field).content, field);
  if (!validity[0] || !validity[1]) throw new InvalidArgumentError(field, '<DER>', 'Validity lacks notBefore/notAfter');
  const info = { uris: [] as string[], isCa: false, keyUsage: undefined as Set<number> | undefined, notBefore: decodeTime(validity[0], field), notAfter: decodeTime(validity[1], field) };
  const extWrapper = parts.find((p) => p.tag === 0xa3);
  if (!extWrapper) return info;
  for (const ext of children(expectTag(readTlv(extWrapper.content, 0, field), TAG.SEQUENCE, 'Extensions', field).content, field)) {
    const e = children(ext.content, field);
    const id = decodeOid(expectTag(e[0], TAG.OID, 'extnID', field).content);
    const value = expectTag(e[e.length - 1], TAG.OCTET_STRING, 'extnValue', field).content;
    if (id === OID.basicConstraints) {
      const bc = children(expectTag(readTlv(value, 0, field), TAG.SEQUENCE, 'BasicConstraints', field).content, field);
      info.isCa = bc[0]?.tag === TAG.BOOLEAN && bc[0].content[0] !== 0;
    } else if (id === OID.keyUsage) {
      info.keyUsage = new Set(decodeNamedBits(expectTag(readTlv(value, 0, field), TAG.BIT_STRING, 'KeyUsage', field).content));
    } else if (id === OID.subjectAltName) {
      for (const gn of children(expectTag(readTlv(value, 0, field), TAG.SEQUENCE, 'SubjectAltName', field).content, field)) {
        if (gn.tag === 0x86) info.uris.push(gn.content.toString('ascii')); // [6] IA5String uniformResourceIdentifier
      }
    }
  }
  return info;
}

// ---- encodings ----

/** Splits concatenated DER certificates (the Workload API's `x509_svid` and `bundle`). */
export function splitDer(der: Uint8Array, field = 'certificates', max = MAX_CHAIN_CERTS): Buffer[] {
  const buf = Buffer.from(der.buffer, der.byteOffset, der.byteLength);
  const out: Buffer[] = [];
  for (let off = 0; off < buf.length; ) {
    if (out.length === max) throw new InvalidArgumentError(field, `${buf.length} bytes`, `more than ${max} certificates`);
    const t = readTlv(buf, off, field);
    if (t.tag !== TAG.SEQUENCE) throw new InvalidArgumentError(field, `byte ${off}`, 'not a DER certificate (expected a SEQUENCE)');
    out.push(t.raw);
    off += t.raw.length;
  }
  return out;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** The DER of each PEM block labelled `label` in `text`. */
export function splitPem(text: string, label = 'CERTIFICATE', field = 'certificates', max = MAX_CHAIN_CERTS): Buffer[] {
  const out: Buffer[] = [];
  for (const m of text.matchAll(PEM_BLOCK)) {
    if (m[1] !== label) continue;
    if (out.length === max) throw new InvalidArgumentError(field, `${text.length} characters`, `more than ${max} ${label} blocks`);
    out.push(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'));
  }
  return out;
}

export function toPem(der: Uint8Array, label = 'CERTIFICATE'): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END ${label}-----\n`;
}

function certificate(der: Buffer, field: string): X509Certificate {
  try {
    const cert = new X509Certificate(der);
    certInfo(cert, field);
    return cert;
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    throw new InvalidArgumentError(field, `${der.length} bytes`, `not an X.509 certificate: ${errorMessage(err)}`, { cause: err });
  }
}

/** Certificates from concatenated DER, or from PEM text. At least one. */
export function parseCertificates(input: Uint8Array | string, field = 'certificates', max = MAX_CHAIN_CERTS): X509Certificate[] {
  const ders = typeof input === 'string' ? splitPem(input, 'CERTIFICATE', field, max) : splitDer(input, field, max);
  if (ders.length === 0) throw new InvalidArgumentError(field, typeof input === 'string' ? input : `${input.length} bytes`, 'no certificate found');
  return ders.map((d, i) => certificate(d, `${field}[${i}]`));
}

// ---- SVIDs ----

/** The SPIFFE ID of a certificate: its one URI SAN, which must be a valid SPIFFE ID. */
export function spiffeIdOf(cert: X509Certificate, field = 'certificate'): string {
  const { uris } = certInfo(cert, field);
  if (uris.length !== 1) throw new InvalidArgumentError(`${field}.uri_san`, uris, uris.length === 0 ? 'an SVID has exactly one URI SAN; this one has none' : `an SVID has exactly one URI SAN; this one has ${uris.length}`);
  return parseSpiffeId(uris[0]!, `${field}.uri_san`).id;
}

/**
 * Why `leaf` may not be an SVID's leaf, or undefined. Our own SVID must also carry digitalSignature (as
 * go-spiffe's ParseRaw requires); a peer's is checked like go-spiffe's Verify, which does not ask for it.
 */
function leafProblem(leaf: X509Certificate, own: boolean): string | undefined {
  const { isCa, keyUsage } = certInfo(leaf);
  if (isCa) return 'the leaf is a CA (basicConstraints CA:TRUE)';
  if (own && !keyUsage?.has(KEY_USAGE.digitalSignature)) return 'the leaf lacks the digitalSignature key usage';
  if (keyUsage?.has(KEY_USAGE.keyCertSign)) return 'the leaf has the keyCertSign key usage';
  if (keyUsage?.has(KEY_USAGE.cRLSign)) return 'the leaf has the cRLSign key usage';
  return undefined;
}

function signerProblem(cert: X509Certificate): string | undefined {
  const { isCa, keyUsage } = certInfo(cert);
  if (!isCa) return 'is not a CA (basicConstraints CA:TRUE missing)';
  if (keyUsage && !keyUsage.has(KEY_USAGE.keyCertSign)) return 'lacks the keyCertSign key usage';
  return undefined;
}

/** An X509Svid from parsed certificates (leaf first) and key, validated; `field` prefixes error fields. */
export function x509SvidFrom(chain: readonly X509Certificate[], privateKey: KeyObject, field = 'x509_svid'): X509Svid {
  const leaf = chain[0];
  if (!leaf) throw new InvalidArgumentError(field, [], 'no certificate');
  const spiffeId = spiffeIdOf(leaf, `${field}[0]`);
  const problem = leafProblem(leaf, true);
  if (problem) throw new InvalidArgumentError(`${field}[0]`, spiffeId, problem);
  chain.slice(1).forEach((c, i) => {
    const p = signerProblem(c);
    if (p) throw new InvalidArgumentError(`${field}[${i + 1}]`, c.subject, `an intermediate ${p}`);
  });
  if (privateKey.type !== 'private') throw new InvalidArgumentError(`${field}_key`, privateKey.type, 'not a private key');
  if (!leaf.checkPrivateKey(privateKey)) throw new InvalidArgumentError(`${field}_key`, spiffeId, "the private key does not match the leaf certificate's public key");
  return {
    spiffeId,
    certChainPem: chain.map((c) => c.toString()).join(''),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    leaf,
    privateKey,
    notAfter: certInfo(leaf).notAfter,
  };
}

/** Parses the Workload API form: concatenated DER certificates (leaf first) and an unencrypted PKCS#8 DER key. */
export function parseX509SvidDer(certsDer: Uint8Array, keyDer: Uint8Array, field = 'x509_svid'): X509Svid {
  const chain = parseCertificates(certsDer, field);
  return x509SvidFrom(chain, privateKeyFrom(() => createPrivateKey({ key: Buffer.from(keyDer), format: 'der', type: 'pkcs8' }), `${field}_key`), field);
}

/** Parses PEM certificates (leaf first) and a PEM private key (PKCS#8, or SEC1/PKCS#1 as Node reads them). */
export function parseX509SvidPem(certsPem: string, keyPem: string, field = 'x509_svid'): X509Svid {
  const chain = parseCertificates(certsPem, field);
  return x509SvidFrom(chain, privateKeyFrom(() => createPrivateKey(keyPem), `${field}_key`), field);
}

function privateKeyFrom(read: () => KeyObject, field: string): KeyObject {
  try {
    return read();
  } catch (err) {
    throw new InvalidArgumentError(field, '<key>', `not an unencrypted private key: ${errorMessage(err)}`, { cause: err });
  }
}

/** The Workload API form of an SVID: concatenated DER chain and PKCS#8 DER key. */
export function svidToDer(svid: X509Svid): { certs: Buffer; key: Buffer } {
  return {
    certs: Buffer.concat(splitPem(svid.certChainPem)),
    key: svid.privateKey.export({ type: 'pkcs8', format: 'der' }),
  };
}

/** A trust bundle (concatenated DER CA certificates) as the PEM that X509Material holds. */
export function bundleDerToPem(der: Uint8Array, field = 'bundle'): string {
  return parseCertificates(der, field, MAX_BUNDLE_CERTS)
    .map((c) => c.toString())
    .join('');
}

/** The bundles of a Workload API response by trust domain name: the SVID's own, then the federated ones. */
export function bundlesFromWire(ownTrustDomain: string, own: Uint8Array, federated: Readonly<Record<string, Uint8Array>>, maxFederated: number): Map<string, string> {
  const bundles = new Map<string, string>([[ownTrustDomain, bundleDerToPem(own, 'bundle')]]);
  const keys = Object.keys(federated);
  if (keys.length > maxFederated) throw new InvalidArgumentError('federated_bundles', `${keys.length} entries`, `more than ${maxFederated} federated bundles`);
  for (const key of keys) {
    const td = parseTrustDomainKey(key, 'federated_bundles');
    if (td !== ownTrustDomain) bundles.set(td, bundleDerToPem(federated[key]!, `federated_bundles[${JSON.stringify(key)}]`));
  }
  return bundles;
}

// ---- verification ----

export type SvidVerificationReason = 'malformed' | 'trust-domain' | 'not-yet-valid' | 'expired' | 'bad-signature' | 'self-signed' | 'unknown-authority';

/** A peer's SVID chain does not verify; `reason` says why (a PermissionDenied at the server edge). */
export class SvidVerificationError extends PermissionDeniedError {
  override name = 'SvidVerificationError';
  constructor(
    readonly reason: SvidVerificationReason,
    message: string,
    readonly spiffeId?: string,
    options?: { cause?: unknown },
  ) {
    super(`SVID ${spiffeId ?? '(no SPIFFE ID)'}: ${message}`, options);
  }
}

const BUNDLE_CACHE_MAX = 64;
const bundleCache = new Map<string, X509Certificate[]>();

/** The certificates of a PEM bundle; parsed once per distinct text (a small bounded cache). */
export function bundleCertificates(pem: string): X509Certificate[] {
  let certs = bundleCache.get(pem);
  if (!certs) {
    certs = parseCertificates(pem, 'bundle', MAX_BUNDLE_CERTS);
    if (bundleCache.size >= BUNDLE_CACHE_MAX) bundleCache.delete(bundleCache.keys().next().value!);
    bundleCache.set(pem, certs);
  }
  return certs;
}

function checkValidity(cert: X509Certificate, role: string, now: number, id: string): void {
  const { notBefore, notAfter } = certInfo(cert);
  if (now < notBefore.getTime()) throw new SvidVerificationError('not-yet-valid', `${role} is not valid before ${notBefore.toISOString()}`, id);
  if (now > notAfter.getTime()) throw new SvidVerificationError('expired', `${role} expired at ${notAfter.toISOString()}`, id);
}

/** The certificate in `candidates` that issued and signed `cert`; `badSignature` when one issued it by name but the signature fails. */
function findIssuer(cert: X509Certificate, candidates: readonly X509Certificate[]): { issuer?: X509Certificate; badSignature: boolean } {
  let badSignature = false;
  for (const c of candidates) {
    if (!cert.checkIssued(c)) continue;
    if (cert.verify(c.publicKey)) return { issuer: c, badSignature: false };
    badSignature = true;
  }
  return { badSignature };
}

/**
 * Verifies a peer's SVID chain (leaf first, then intermediates) up to a root of the bundle of the leaf's
 * trust domain at time `now`, and returns the leaf's SPIFFE ID; throws SvidVerificationError naming the
 * reason otherwise. Every certificate on the path, the root included, must be valid at `now`.
 */
export function verifySvidChain(chain: readonly X509Certificate[], bundles: ReadonlyMap<string, string>, now: number | Date = Date.now()): string {
  const t = typeof now === 'number' ? now : now.getTime();
  const leaf = chain[0];
  if (!leaf) throw new SvidVerificationError('malformed', 'the chain is empty');
  if (chain.length > MAX_CHAIN_CERTS) throw new SvidVerificationError('malformed', `the chain holds ${chain.length} certificates (at most ${MAX_CHAIN_CERTS})`);
  let id: string;
  try {
    id = spiffeIdOf(leaf, 'peer');
  } catch (err) {
    throw new SvidVerificationError('malformed', errorMessage(err), undefined, { cause: err });
  }
  const problem = leafProblem(leaf, false);
  if (problem) throw new SvidVerificationError('malformed', problem, id);
  const td = parseSpiffeId(id).trustDomain;
  const pem = bundles.get(td);
  if (pem === undefined) throw new SvidVerificationError('trust-domain', `no trust bundle for trust domain "${td}" (have: ${[...bundles.keys()].join(', ') || 'none'})`, id);
  const roots = bundleCertificates(pem);
  const unused = chain.slice(1);
  checkValidity(leaf, 'the leaf', t, id);
  for (let cur = leaf, depth = 0; depth < chain.length; depth++) {
    const root = findIssuer(cur, roots);
    if (root.issuer) {
      checkValidity(root.issuer, `the root ${root.issuer.subject.replace(/\n/g, ', ')}`, t, id);
      return id;
    }
    const next = findIssuer(cur, unused);
    if (!next.issuer) {
      if (root.badSignature || next.badSignature) throw new SvidVerificationError('bad-signature', `the signature of ${depth === 0 ? 'the leaf' : `intermediate ${depth}`} does not verify with its issuer's key`, id);
      if (depth === 0 && leaf.subject === leaf.issuer && leaf.verify(leaf.publicKey)) throw new SvidVerificationError('self-signed', `the leaf is self-signed and not in the bundle of "${td}"`, id);
      throw new SvidVerificationError('unknown-authority', `${depth === 0 ? 'the leaf' : `intermediate ${depth}`} was not issued by a root of "${td}" or by an intermediate of the chain`, id);
    }
    const p = signerProblem(next.issuer);
    if (p) throw new SvidVerificationError('malformed', `an intermediate ${p}`, id);
    checkValidity(next.issuer, `intermediate ${depth + 1}`, t, id);
    unused.splice(unused.indexOf(next.issuer), 1);
    cur = next.issuer;
  }
  throw new SvidVerificationError('unknown-authority', `no path from the leaf to a root of "${td}"`, id);
}
