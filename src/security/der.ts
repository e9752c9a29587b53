/**
 * A small DER (ASN.1 Distinguished Encoding Rules) writer and reader: just what X.509 needs here. Node's
 * crypto verifies and signs but cannot build a certificate, and its X509Certificate does not expose the key
 * usage bits, basic constraints or the URI SANs as structured values; the CA (ca.ts) writes TBSCertificates
 * with the writer and x509.ts reads extensions and validity with the reader. Single-byte tags and definite
 * lengths only (all X.509 needs); the reader checks every length against its enclosing bounds and refuses
 * non-minimal lengths, so a hostile certificate cannot make it read outside the buffer.
 */
import { InvalidArgumentError } from '../core/errors.js';

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

// ---- writer ----

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

/** One TLV with the given tag byte and content. */
export function tlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([tag]), encodeLength(content.length), content]);
}

export const sequence = (...items: Uint8Array[]): Buffer => tlv(TAG.SEQUENCE, Buffer.concat(items));
export const set = (...items: Uint8Array[]): Buffer => tlv(TAG.SET, Buffer.concat(items));
export const octetString = (b: Uint8Array): Buffer => tlv(TAG.OCTET_STRING, b);
export const utf8String = (s: string): Buffer => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));
export const ia5String = (s: string): Buffer => tlv(TAG.IA5_STRING, Buffer.from(s, 'ascii'));
export const boolean = (v: boolean): Buffer => tlv(TAG.BOOLEAN, Buffer.from([v ? 0xff : 0x00]));
/** `[n]` EXPLICIT: a constructed context-specific tag around one encoded value. */
export const explicit = (n: number, inner: Uint8Array): Buffer => tlv(0xa0 | n, inner);
/** `[n]` IMPLICIT on a primitive: the content with a context-specific tag. */
export const implicitPrimitive = (n: number, content: Uint8Array): Buffer => tlv(0x80 | n, content);

/** A non-negative INTEGER from big-endian magnitude bytes, minimal (leading zeros dropped, 0x00 added before a high bit). */
export function unsignedInteger(magnitude: Uint8Array): Buffer {
  let i = 0;
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++;
  const m = Buffer.from(magnitude.subarray(i));
  if (m.length === 0) return tlv(TAG.INTEGER, Buffer.from([0]));
  return tlv(TAG.INTEGER, m[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), m]) : m);
}

export function smallInteger(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`smallInteger: ${n}`);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return unsignedInteger(Uint8Array.from(bytes));
}

/** An OBJECT IDENTIFIER from its dotted form. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map((a) => Number(a));
  if (arcs.length < 2 || arcs.some((a) => !Number.isSafeInteger(a) || a < 0)) throw new RangeError(`oid: ${dotted}`);
  const out: number[] = [];
  const push = (v: number) => {
    const group: number[] = [v & 0x7f];
    for (let x = Math.floor(v / 128); x > 0; x = Math.floor(x / 128)) group.unshift(0x80 | (x & 0x7f));
    out.push(...group);
  };
  push(arcs[0]! * 40 + arcs[1]!);
  for (const a of arcs.slice(2)) push(a);
  return tlv(TAG.OID, Buffer.from(out));
}

/** A BIT STRING of whole bytes (0 unused bits), as for keys and signatures. */
export const bitStringBytes = (b: Uint8Array): Buffer => tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([0]), b]));

/**
 * A named-bit BIT STRING (KeyUsage): bit 0 is the most significant bit of the first byte. DER drops
 * trailing zero bits, so the unused-bits count is that of the last set bit.
 */
export function namedBits(bits: readonly number[]): Buffer {
  if (bits.length === 0) return tlv(TAG.BIT_STRING, Buffer.from([0]));
  const last = Math.max(...bits);
  const bytes = Buffer.alloc(Math.floor(last / 8) + 1);
  for (const b of bits) bytes[b >> 3]! |= 0x80 >> (b & 7);
  return tlv(TAG.BIT_STRING, Buffer.concat([Buffer.from([7 - (last & 7)]), bytes]));
}

/** A Time: UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5280 §4.1.2.5); whole seconds, UTC. */
export function time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${p(y % 100)}${rest}`, 'ascii'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${p(y, 4)}${rest}`, 'ascii'));
}

// ---- reader ----

/** One decoded TLV: `content` is a view into the input; `raw` the whole element. */
export interface Tlv {
  readonly tag: number;
  readonly content: Buffer;
  readonly raw: Buffer;
}

function bad(field: string, reason: string): InvalidArgumentError {
  return new InvalidArgumentError(field, '<DER>', reason);
}

/** Reads the TLV at `offset` of `buf`; `field` names the input in errors. */
export function readTlv(buf: Buffer, offset = 0, field = 'der'): Tlv {
  if (offset + 2 > buf.length) throw bad(field, `truncated at byte ${offset}`);
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw bad(field, `multi-byte tag at byte ${offset}`);
  let len = buf[offset + 1]!;
  let header = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0) throw bad(field, `indefinite length at byte ${offset}`);
    if (n > 4) throw bad(field, `length of ${n} bytes at byte ${offset}`);
    if (offset + 2 + n > buf.length) throw bad(field, `truncated length at byte ${offset}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i]!;
    if (len < 0x80 || buf[offset + 2]! === 0) throw bad(field, `non-minimal length at byte ${offset}`);
    header += n;
  }
  const end = offset + header + len;
  if (end > buf.length) throw bad(field, `element at byte ${offset} runs past the end (${len} bytes)`);
  return { tag, content: buf.subarray(offset + header, end), raw: buf.subarray(offset, end) };
}

/** The elements inside a constructed TLV (or a whole buffer of concatenated TLVs). */
export function children(content: Buffer, field = 'der'): Tlv[] {
  const out: Tlv[] = [];
  for (let off = 0; off < content.length; ) {
    const t = readTlv(content, off, field);
    out.push(t);
    off += t.raw.length;
  }
  return out;
}

/** Reads `t` expecting `tag`; names what was expected in the error. */
export function expectTag(t: Tlv | undefined, tag: number, what: string, field = 'der'): Tlv {
  if (!t || t.tag !== tag) throw bad(field, `expected ${what} (tag 0x${tag.toString(16)}), got ${t ? `0x${t.tag.toString(16)}` : 'nothing'}`);
  return t;
}

export function decodeOid(content: Buffer): string {
  const arcs: number[] = [];
  let v = 0;
  for (const b of content) {
    v = v * 128 + (b & 0x7f);
    if (!(b & 0x80)) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

/** Named bits of a BIT STRING (KeyUsage): the indexes of the set bits. */
export function decodeNamedBits(content: Buffer): number[] {
  const bits: number[] = [];
  for (let i = 1; i < content.length; i++) for (let b = 0; b < 8; b++) if (content[i]! & (0x80 >> b)) bits.push((i - 1) * 8 + b);
  return bits;
}

/** A UTCTime or GeneralizedTime (the `Z` forms RFC 5280 allows) as a Date. */
export function decodeTime(t: Tlv, field = 'der'): Date {
  const s = t.content.toString('ascii');
  const m = t.tag === TAG.UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : t.tag === TAG.GENERALIZED_TIME ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (!m) throw bad(field, `not a UTCTime/GeneralizedTime: ${JSON.stringify(s.slice(0, 20))}`);
  let year = Number(m[1]);
  if (t.tag === TAG.UTC_TIME) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}
