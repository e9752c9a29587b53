/**
 * What the remote mechanisms (VXLAN, WireGuard) share: reading and checking their parameters (`src_ip`,
 * `dst_ip`, ports, `MTU`), the overlay's cost in MTU, the order of two tunnel IPs (VNI parity), and
 * whether a next hop is local (`unix:`/`inode:`) or remote. Pure functions; every check throws an
 * `InvalidArgumentError` naming the parameter and the value. Mirrors the api's `mechanisms/common`
 * helpers and sdk-vpp's `mtu` elements.
 */
import { isIP } from 'node:net';
import type { Mechanism } from '../../../api/gen/connection.js';
import { MECH_VXLAN, PARAM_MTU } from '../../../api/constants.js';
import { InvalidArgumentError } from '../../../core/errors.js';

/** MTU of the underlay when nothing else is known (Ethernet). */
export const DEFAULT_UNDERLAY_MTU = 1500;
/** Smallest MTU the kernel accepts for an IPv4 interface; a tunnel MTU below it is refused. */
export const MIN_TUNNEL_MTU = 576;
/** Largest MTU accepted in a mechanism (jumbo frames). */
export const MAX_TUNNEL_MTU = 9000;

/** Bytes the overlay adds per packet: outer IP + UDP + VXLAN header (+ inner Ethernet) / WireGuard header. */
export const OVERHEAD = Object.freeze({
  VXLAN: { 4: 50, 6: 70 },
  WIREGUARD: { 4: 60, 6: 80 },
} as const);

/** The inner MTU a tunnel of `type` between tunnel IPs of `ip`'s family leaves of `underlayMtu`. */
export function tunnelMtu(type: string, ip: string, underlayMtu: number = DEFAULT_UNDERLAY_MTU): number {
  const family = isIP(ip) === 6 ? 6 : 4;
  const cost = type === MECH_VXLAN ? OVERHEAD.VXLAN[family] : OVERHEAD.WIREGUARD[family];
  return underlayMtu - cost;
}

function field(m: Mechanism, key: string): string {
  return `${m.type}.parameters.${key}`;
}

/** The parameter `key` of `m` as an IP address; required. */
export function ipParam(m: Mechanism, key: string): string {
  const v = m.parameters?.[key] ?? '';
  if (isIP(v) === 0) throw new InvalidArgumentError(field(m, key), v, v ? 'not an IP address' : 'required');
  return v;
}

/** The parameter `key` of `m` as a UDP port (1–65535); required. */
export function portParam(m: Mechanism, key: string): number {
  const v = m.parameters?.[key] ?? '';
  const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
  if (!(n >= 1 && n <= 65535)) throw new InvalidArgumentError(field(m, key), v, v ? 'not a UDP port (1–65535)' : 'required');
  return n;
}

/** The `MTU` parameter of `m` if present (MIN_TUNNEL_MTU–MAX_TUNNEL_MTU), else undefined. */
export function mtuParam(m: Mechanism): number | undefined {
  const v = m.parameters?.[PARAM_MTU];
  if (v === undefined || v === '') return undefined;
  const n = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
  if (!(n >= MIN_TUNNEL_MTU && n <= MAX_TUNNEL_MTU)) throw new InvalidArgumentError(field(m, PARAM_MTU), v, `not an MTU (${MIN_TUNNEL_MTU}–${MAX_TUNNEL_MTU})`);
  return n;
}

/** `MTU` = the smaller of what the mechanism carries and `mine`. */
export function lowerMtu(m: Mechanism, mine: number): void {
  const offered = mtuParam(m);
  m.parameters[PARAM_MTU] = String(offered === undefined ? mine : Math.min(offered, mine));
}

/** 16 bytes of an IP (IPv4 as ::ffff:a.b.c.d), for comparing. */
function ipBytes(ip: string): Buffer {
  const out = Buffer.alloc(16);
  if (isIP(ip) === 4) {
    out[10] = 0xff;
    out[11] = 0xff;
    ip.split('.').forEach((o, i) => (out[12 + i] = Number(o)));
    return out;
  }
  const [head, tail = ''] = ip.split('::');
  const words = (s: string) => (s ? s.split(':') : []);
  let h = words(head);
  let t = words(tail);
  // an embedded IPv4 tail (::ffff:1.2.3.4) counts as two words
  const v4 = (ws: string[]) => (ws.length && ws[ws.length - 1].includes('.') ? [...ws.slice(0, -1), ...v4words(ws[ws.length - 1])] : ws);
  h = v4(h);
  t = v4(t);
  const all = ip.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  all.forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), i * 2));
  return out;
}

function v4words(s: string): string[] {
  const o = s.split('.').map(Number);
  return [((o[0] << 8) | o[1]).toString(16), ((o[2] << 8) | o[3]).toString(16)];
}

/** Byte order of two IP addresses: negative, 0 or positive. */
export function compareIps(a: string, b: string): number {
  return Buffer.compare(ipBytes(a), ipBytes(b));
}

/** A next hop reached over a unix socket (or an inherited one) is on this node: only LOCAL mechanisms go there. */
export function isLocalUrl(url: string | undefined): boolean {
  return url !== undefined && (url.startsWith('unix:') || url.startsWith('inode:'));
}
