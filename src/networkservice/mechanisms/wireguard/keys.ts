/**
 * WireGuard key pairs (X25519) in WireGuard's base64 form (32 raw bytes → 44 characters), made and read
 * with node:crypto. A private key read back from a device (after a forwarder restart) gives the same
 * public key again.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { InvalidArgumentError } from '../../../core/errors.js';

export interface KeyPair {
  readonly privateKey: string;
  readonly publicKey: string;
}

/** DER prefix of a PKCS#8 X25519 private key; the 32 raw bytes follow. */
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

const b64 = (b64url: string) => Buffer.from(b64url, 'base64url').toString('base64');

export function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey: b64(privateKey.export({ format: 'jwk' }).d!), publicKey: b64(publicKey.export({ format: 'jwk' }).x!) };
}

/** `v` as a WireGuard key: base64 of exactly 32 bytes; throws naming `field`. */
export function checkKey(field: string, v: string | undefined): string {
  const s = v ?? '';
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(s)) throw new InvalidArgumentError(field, s, s ? 'not a WireGuard key (base64 of 32 bytes)' : 'required');
  return s;
}

export function publicKeyOf(privateKey: string): string {
  const raw = Buffer.from(checkKey('privateKey', privateKey), 'base64');
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
  return b64(createPublicKey(key).export({ format: 'jwk' }).x!);
}
