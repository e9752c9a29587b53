/**
 * The certificate authority of the mesh's embedded issuer (the one-host default, where no SPIRE runs): an
 * EC P-256 root key and a self-signed root certificate for `spiffe://<trust-domain>`, and `issue`, which
 * makes X.509-SVIDs shaped like SPIRE's (leaf, not a CA, digitalSignature + keyEncipherment + keyAgreement,
 * serverAuth + clientAuth, one URI SAN, SKI/AKI, a random 127-bit serial, notBefore back-dated a little,
 * notAfter never past the root's). Node cannot build certificates, so the TBSCertificate is written with
 * der.ts and signed with `crypto.sign` (ECDSA with SHA-256, DER signature): no extra dependency.
 * `buildCertificate` is the one place a certificate is assembled; tests use it for odd certificates.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { type Clock, realClock } from '../core/clock.js';
import { InvalidArgumentError, NsmError, errorMessage } from '../core/errors.js';
import * as der from './der.js';
import { parseSpiffeId, trustDomainProblem } from './spiffe-id.js';
import type { X509Svid } from './svid.js';
import { KEY_USAGE, OID, certInfo, spiffeIdOf, x509SvidFrom } from './x509.js';

export const MIN_SVID_TTL_MS = 60_000;
export const MAX_SVID_TTL_MS = 24 * 3600_000;
export const DEFAULT_SVID_TTL_MS = 3600_000;
export const MIN_ROOT_TTL_MS = 3600_000;
export const MAX_ROOT_TTL_MS = 10 * 365 * 24 * 3600_000;
export const DEFAULT_ROOT_TTL_MS = 365 * 24 * 3600_000;
/** How far notBefore lies before the time of issue, so a peer whose clock is a little behind accepts it. */
export const BACKDATE_MS = 10_000;

const EC_P256 = { namedCurve: 'prime256v1' } as const;

export interface CertificateTemplate {
  /** The issuer's key; the certificate is self-signed when `issuer` is absent. */
  readonly signingKey: KeyObject;
  /** The issuing CA's certificate (its subject becomes the issuer, its SKI the AKI); absent for a self-signed one. */
  readonly issuer?: X509Certificate;
  readonly publicKey: KeyObject;
  /** Relative distinguished names in order, e.g. `[['O', 'nsm-ts'], ['CN', 'x']]`. */
  readonly subject: ReadonlyArray<readonly ['O' | 'CN', string]>;
  readonly uris: readonly string[];
  readonly isCa: boolean;
  readonly keyUsage: readonly number[];
  /** Extended key usage OIDs; none → no extension. */
  readonly extKeyUsage?: readonly string[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Big-endian positive serial; random 127 bits when absent. */
  readonly serial?: Uint8Array;
}

const ATTR_OID = { O: OID.organizationName, CN: OID.commonName } as const;

function name(rdns: CertificateTemplate['subject']): Buffer {
  return der.sequence(...rdns.map(([k, v]) => der.set(der.sequence(der.oid(ATTR_OID[k]), der.utf8String(v)))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? der.sequence(der.oid(id), der.boolean(true), der.octetString(value)) : der.sequence(der.oid(id), der.octetString(value));
}

/** RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
function keyIdentifier(spki: Buffer): Buffer {
  const parts = der.children(der.readTlv(spki).content);
  const bits = der.expectTag(parts[1], der.TAG.BIT_STRING, 'subjectPublicKey').content.subarray(1);
  return createHash('sha1').update(bits).digest();
}

/** The raw subject Name and the SKI (read from the extension, else computed) of a CA certificate. */
function issuerFields(cert: X509Certificate): { subject: Buffer; ski: Buffer } {
  const tbs = der.children(der.children(der.readTlv(cert.raw).content)[0]!.content);
  const base = tbs[0]?.tag === 0xa0 ? 1 : 0;
  const subject = tbs[base + 4]!.raw;
  const exts = tbs.find((p) => p.tag === 0xa3);
  for (const ext of exts ? der.children(der.readTlv(exts.content).content) : []) {
    const e = der.children(ext.content);
    if (der.decodeOid(e[0]!.content) === OID.subjectKeyIdentifier) return { subject, ski: der.readTlv(e[e.length - 1]!.content).content };
  }
  return { subject, ski: keyIdentifier(cert.publicKey.export({ type: 'spki', format: 'der' })) };
}

function randomSerial(): Buffer {
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  return b;
}

/** Assembles, signs (ECDSA P-256 with SHA-256) and parses one certificate. */
export function buildCertificate(t: CertificateTemplate): X509Certificate {
  const sigAlg = der.sequence(der.oid(OID.ecdsaWithSha256));
  const subject = name(t.subject);
  const spki = t.publicKey.export({ type: 'spki', format: 'der' });
  const ski = keyIdentifier(spki);
  const issuer = t.issuer ? issuerFields(t.issuer) : { subject, ski };
  const exts = [
    extension(OID.basicConstraints, true, t.isCa ? der.sequence(der.boolean(true)) : der.sequence()),
    extension(OID.keyUsage, true, der.namedBits(t.keyUsage)),
    ...(t.extKeyUsage?.length ? [extension(OID.extKeyUsage, false, der.sequence(...t.extKeyUsage.map((o) => der.oid(o))))] : []),
    extension(OID.subjectKeyIdentifier, false, der.octetString(ski)),
    ...(t.issuer ? [extension(OID.authorityKeyIdentifier, false, der.sequence(der.implicitPrimitive(0, issuer.ski)))] : []),
    ...(t.uris.length ? [extension(OID.subjectAltName, false, der.sequence(...t.uris.map((u) => der.implicitPrimitive(6, Buffer.from(u, 'ascii')))))] : []),
  ];
  const tbs = der.sequence(
    der.explicit(0, der.smallInteger(2)),
    der.unsignedInteger(t.serial ?? randomSerial()),
    sigAlg,
    issuer.subject,
    der.sequence(der.time(t.notBefore), der.time(t.notAfter)),
    subject,
    spki,
    der.explicit(3, der.sequence(...exts)),
  );
  const signature = sign('sha256', tbs, t.signingKey);
  return new X509Certificate(der.sequence(tbs, sigAlg, der.bitStringBytes(signature)));
}

export interface CaOptions {
  readonly trustDomain: string;
  readonly clock?: Clock;
  /** Lifetime of the root certificate; DEFAULT_ROOT_TTL_MS, within [MIN_ROOT_TTL_MS, MAX_ROOT_TTL_MS]. */
  readonly rootTtlMs?: number;
}

export interface IssueRequest {
  /** `spiffe://<the CA's trust domain>/<path>`. */
  readonly spiffeId: string;
  /** DEFAULT_SVID_TTL_MS, within [MIN_SVID_TTL_MS, MAX_SVID_TTL_MS]; cut to the root's notAfter. */
  readonly ttlMs?: number;
  /** The workload's own key (EC P-256 or any key Node signs with); a fresh EC P-256 key when absent. */
  readonly privateKey?: KeyObject;
}

function checkTtl(field: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new InvalidArgumentError(field, value, `must be whole milliseconds in [${min}, ${max}]`);
  return value;
}

/** The mesh's own CA: a root for one trust domain that issues X.509-SVIDs in it. */
export class EmbeddedCa {
  readonly rootPem: string;
  readonly #key: KeyObject;
  readonly #clock: Clock;

  constructor(
    readonly trustDomain: string,
    readonly root: X509Certificate,
    key: KeyObject,
    clock: Clock = realClock,
  ) {
    this.#key = key;
    this.#clock = clock;
    this.rootPem = root.toString();
  }

  /** The trust bundle of the trust domain (the root, PEM) as X509Material holds it. */
  get bundles(): ReadonlyMap<string, string> {
    return new Map([[this.trustDomain, this.rootPem]]);
  }

  /** Issues an X.509-SVID for `spiffeId` in this trust domain. */
  issue(req: IssueRequest): X509Svid {
    const privateKey = req.privateKey ?? generateKeyPairSync('ec', EC_P256).privateKey;
    if (privateKey.type !== 'private') throw new InvalidArgumentError('privateKey', privateKey.type, 'not a private key');
    const leaf = this.issueCertificate({ spiffeId: req.spiffeId, ttlMs: req.ttlMs, publicKey: createPublicKey(privateKey) });
    return x509SvidFrom([leaf], privateKey);
  }

  /** Certifies a public key whose private key stays with the caller (CSR style). */
  issueCertificate(req: { spiffeId: string; ttlMs?: number; publicKey: KeyObject }): X509Certificate {
    const id = parseSpiffeId(req.spiffeId, 'spiffeId');
    if (id.trustDomain !== this.trustDomain) throw new InvalidArgumentError('spiffeId', req.spiffeId, `not in this CA's trust domain "${this.trustDomain}"`);
    if (id.path === '') throw new InvalidArgumentError('spiffeId', req.spiffeId, 'a workload SPIFFE ID has a path');
    const ttl = checkTtl('ttl', req.ttlMs ?? DEFAULT_SVID_TTL_MS, MIN_SVID_TTL_MS, MAX_SVID_TTL_MS);
    const now = this.#clock.now();
    const rootEnd = certInfo(this.root).notAfter.getTime();
    if (now >= rootEnd) throw new NsmError(`the CA root of "${this.trustDomain}" expired at ${new Date(rootEnd).toISOString()}`);
    return buildCertificate({
      signingKey: this.#key,
      issuer: this.root,
      publicKey: req.publicKey,
      subject: [['O', 'nsm-ts']],
      uris: [id.id],
      isCa: false,
      keyUsage: [KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment, KEY_USAGE.keyAgreement],
      extKeyUsage: [OID.serverAuth, OID.clientAuth],
      notBefore: new Date(Math.floor((now - BACKDATE_MS) / 1000) * 1000),
      notAfter: new Date(Math.floor(Math.min(now + ttl, rootEnd) / 1000) * 1000),
    });
  }

  /** The root certificate and key, PEM, to keep the same CA across restarts (`loadCa`). */
  exportPem(): { certPem: string; keyPem: string } {
    return { certPem: this.rootPem, keyPem: this.#key.export({ type: 'pkcs8', format: 'pem' }) as string };
  }
}

/** A new CA with a fresh EC P-256 root for `trustDomain`. */
export function createCa(opts: CaOptions): EmbeddedCa {
  const problem = trustDomainProblem(opts.trustDomain);
  if (problem) throw new InvalidArgumentError('trustDomain', opts.trustDomain, problem);
  const clock = opts.clock ?? realClock;
  const ttl = checkTtl('rootTtl', opts.rootTtlMs ?? DEFAULT_ROOT_TTL_MS, MIN_ROOT_TTL_MS, MAX_ROOT_TTL_MS);
  const { privateKey, publicKey } = generateKeyPairSync('ec', EC_P256);
  const now = clock.now();
  const root = buildCertificate({
    signingKey: privateKey,
    publicKey,
    subject: [['O', 'nsm-ts'], ['CN', `nsm-ts CA ${opts.trustDomain}`]],
    uris: [`spiffe://${opts.trustDomain}`],
    isCa: true,
    keyUsage: [KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign],
    notBefore: new Date(Math.floor((now - BACKDATE_MS) / 1000) * 1000),
    notAfter: new Date(Math.floor((now + ttl) / 1000) * 1000),
  });
  return new EmbeddedCa(opts.trustDomain, root, privateKey, clock);
}

/** A CA from a root certificate and key kept by `exportPem`; checks that they belong together. */
export function loadCa(opts: { certPem: string; keyPem: string; clock?: Clock }): EmbeddedCa {
  let root: X509Certificate;
  let key: KeyObject;
  try {
    root = new X509Certificate(opts.certPem);
    key = createPrivateKey(opts.keyPem);
  } catch (err) {
    throw new InvalidArgumentError('certPem/keyPem', '<PEM>', `not a certificate and private key: ${errorMessage(err)}`, { cause: err });
  }
  if (!certInfo(root).isCa) throw new InvalidArgumentError('certPem', root.subject, 'not a CA certificate');
  if (!root.checkPrivateKey(key)) throw new InvalidArgumentError('keyPem', root.subject, "the key does not match the root certificate's public key");
  const id = parseSpiffeId(spiffeIdOf(root, 'certPem'), 'certPem.uri_san');
  if (id.path !== '') throw new InvalidArgumentError('certPem.uri_san', id.id, 'a CA root names its trust domain only (spiffe://<trust-domain>)');
  return new EmbeddedCa(id.trustDomain, root, key, opts.clock);
}
