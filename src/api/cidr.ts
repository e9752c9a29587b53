/**
 * IP address and CIDR helpers for IPv4 and IPv6, without dependencies. Addresses are held as `bigint`
 * so both families share one code path. Parsing is strict (Go `net.ParseIP` / `net.ParseCIDR` rules: no
 * leading zeros in IPv4 octets, no zone ids) and every parse error is an `InvalidArgumentError` naming the
 * field and the value. Used by IPAM, by the data plane and by config validation.
 */
import { InvalidArgumentError } from './errors.js';

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  readonly value: bigint;
}

/** A parsed CIDR: `ip` is the address as written, `network` the masked network address. */
export interface Cidr {
  readonly family: IpFamily;
  readonly ip: bigint;
  readonly network: bigint;
  readonly prefix: number;
}

export function familyBits(family: IpFamily): 32 | 128 {
  return family === 4 ? 32 : 128;
}

const V4_PART = /^(0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseV4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!V4_PART.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | undefined {
  if (s.length === 0 || s.includes('%')) return undefined;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) > lastColon) {
    // Embedded IPv4 tail (`::ffff:1.2.3.4`): rewrite it as two hex groups.
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    text = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const dbl = text.indexOf('::');
  if (dbl !== text.lastIndexOf('::')) return undefined;
  let groups: string[];
  if (dbl >= 0) {
    const left = text.slice(0, dbl);
    const right = text.slice(dbl + 2);
    const l = left === '' ? [] : left.split(':');
    const r = right === '' ? [] : right.split(':');
    if (l.length + r.length > 7) return undefined;
    groups = [...l, ...Array<string>(8 - l.length - r.length).fill('0'), ...r];
  } else {
    groups = text.split(':');
    if (groups.length !== 8) return undefined;
  }
  let v = 0n;
  for (const g of groups) {
    if (!V6_GROUP.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  return v;
}

/** Parses an IP address, or returns undefined. */
export function tryParseIp(s: string): IpAddress | undefined {
  if (typeof s !== 'string') return undefined;
  if (s.includes(':')) {
    const v = parseV6(s);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseV4(s);
  return v === undefined ? undefined : { family: 4, value: v };
}

export function parseIp(s: string, field = 'ip'): IpAddress {
  const ip = tryParseIp(s);
  if (!ip) throw new InvalidArgumentError(field, s, 'not a valid IPv4 or IPv6 address');
  return ip;
}

export function isIp(s: string): boolean {
  return tryParseIp(s) !== undefined;
}

export function mask(family: IpFamily, prefix: number): bigint {
  const bits = BigInt(familyBits(family));
  const host = bits - BigInt(prefix);
  return ((1n << bits) - 1n) ^ ((1n << host) - 1n);
}

/** Parses `a.b.c.d/n` or `x::y/n`, or returns undefined. */
export function tryParseCidr(s: string): Cidr | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0 || slash !== s.lastIndexOf('/')) return undefined;
  const ip = tryParseIp(s.slice(0, slash));
  const p = s.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > familyBits(ip.family)) return undefined;
  return { family: ip.family, ip: ip.value, network: ip.value & mask(ip.family, prefix), prefix };
}

/** Parses a CIDR; throws InvalidArgumentError naming `field` and the value. */
export function parseCidr(s: string, field = 'cidr'): Cidr {
  const c = tryParseCidr(s);
  if (!c) throw new InvalidArgumentError(field, s, 'not a valid CIDR (expected address/prefix, e.g. 10.0.0.0/24 or fd00::/64)');
  return c;
}

export function isCidr(s: string): boolean {
  return tryParseCidr(s) !== undefined;
}

/** Accepts a CIDR or a bare address (treated as a host /32 or /128). */
export function parseAddressOrCidr(s: string, field = 'address'): Cidr {
  const c = tryParseCidr(s);
  if (c) return c;
  const ip = tryParseIp(s);
  if (ip) return { family: ip.family, ip: ip.value, network: ip.value, prefix: familyBits(ip.family) };
  throw new InvalidArgumentError(field, s, 'not a valid IP address or CIDR');
}

function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((sh) => String((v >> sh) & 255n)).join('.');
}

function formatV6(v: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  // IPv4-mapped addresses print with a dotted tail, like Go and most tools.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${formatV4(v & 0xffffffffn)}`;
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

export function formatIp(ip: IpAddress): string;
export function formatIp(value: bigint, family: IpFamily): string;
export function formatIp(a: IpAddress | bigint, family?: IpFamily): string {
  const ip = typeof a === 'bigint' ? { value: a, family: family! } : a;
  return ip.family === 4 ? formatV4(ip.value) : formatV6(ip.value);
}

/** `network/prefix` in canonical form (host bits cleared). */
export function formatCidr(c: Cidr): string {
  return `${formatIp(c.network, c.family)}/${c.prefix}`;
}

/** `ip/prefix` keeping the host bits as written (like an interface address). */
export function formatIpWithPrefix(c: Cidr): string {
  return `${formatIp(c.ip, c.family)}/${c.prefix}`;
}

/** The host CIDR of an address: `/32` or `/128`. */
export function hostCidr(ip: IpAddress | string): string {
  const a = typeof ip === 'string' ? parseIp(ip) : ip;
  return `${formatIp(a)}/${familyBits(a.family)}`;
}

/** Canonical form of a CIDR string (e.g. `10.0.0.5/24` → `10.0.0.0/24`, `FD00:0::/64` → `fd00::/64`). */
export function canonicalCidr(s: string, field = 'cidr'): string {
  return formatCidr(parseCidr(s, field));
}

export function firstAddress(c: Cidr): bigint {
  return c.network;
}

export function lastAddress(c: Cidr): bigint {
  return c.network | (((1n << BigInt(familyBits(c.family))) - 1n) ^ mask(c.family, c.prefix));
}

/** Number of addresses in the network. */
export function size(c: Cidr): bigint {
  return 1n << BigInt(familyBits(c.family) - c.prefix);
}

function asCidr(n: Cidr | string): Cidr {
  return typeof n === 'string' ? parseCidr(n) : n;
}

function asIp(ip: IpAddress | string): IpAddress {
  if (typeof ip !== 'string') return ip;
  // Accept `a.b.c.d/32` style interface addresses too: the address part is what is tested.
  const slash = ip.indexOf('/');
  if (slash >= 0) {
    const c = parseCidr(ip, 'ip');
    return { family: c.family, value: c.ip };
  }
  return parseIp(ip);
}

/** Whether `net` contains the address (same family only). */
export function contains(net: Cidr | string, ip: IpAddress | string): boolean {
  const n = asCidr(net);
  const a = asIp(ip);
  return n.family === a.family && (a.value & mask(n.family, n.prefix)) === n.network;
}

/** Whether `outer` contains the whole of `inner`. */
export function containsCidr(outer: Cidr | string, inner: Cidr | string): boolean {
  const o = asCidr(outer);
  const i = asCidr(inner);
  return o.family === i.family && o.prefix <= i.prefix && (i.network & mask(o.family, o.prefix)) === o.network;
}

export function overlaps(a: Cidr | string, b: Cidr | string): boolean {
  return containsCidr(a, b) || containsCidr(b, a);
}

/** Addresses of the network, lowest first (lazy; a /64 is fine as long as the caller stops). */
export function* addresses(net: Cidr | string): Generator<IpAddress> {
  const n = asCidr(net);
  const last = lastAddress(n);
  for (let v = n.network; v <= last; v++) yield { family: n.family, value: v };
}

/** Orders IPv4 before IPv6, then by value. */
export function compareIp(a: IpAddress | string, b: IpAddress | string): number {
  const x = asIp(a);
  const y = asIp(b);
  if (x.family !== y.family) return x.family - y.family;
  return x.value < y.value ? -1 : x.value > y.value ? 1 : 0;
}

/** Orders by family, network address, then prefix length. */
export function compareCidr(a: Cidr | string, b: Cidr | string): number {
  const x = asCidr(a);
  const y = asCidr(b);
  if (x.family !== y.family) return x.family - y.family;
  if (x.network !== y.network) return x.network < y.network ? -1 : 1;
  return x.prefix - y.prefix;
}

/** The address `offset` positions after the network address; throws RangeError outside the network. */
export function nthAddress(net: Cidr | string, offset: bigint | number): IpAddress {
  const n = asCidr(net);
  const v = n.network + BigInt(offset);
  if (v < n.network || v > lastAddress(n)) throw new RangeError(`offset ${offset} outside ${formatCidr(n)}`);
  return { family: n.family, value: v };
}

/** Prefix length → dotted mask (IPv4) or mask address (IPv6). */
export function prefixToMask(family: IpFamily, prefix: number): string {
  return formatIp(mask(family, prefix), family);
}
