/**
 * Validation and normalization of a `TunnelSpec` (one end of a remote connection: VXLAN or WireGuard),
 * shared by the Linux and the fake data plane so both accept the same specs, name the same fields in
 * their errors and compare tunnel parameters in the same canonical forms (IPs as the kernel prints them,
 * keys as WireGuard base64). Also the names derived from an owner: the temporary device name used in the
 * tunnel netns before the device moves into the pod, and WireGuard key conversions. Pure functions.
 */
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { formatIp, tryParseIp } from '../api/cidr.js';
import { InvalidArgumentError } from '../core/errors.js';
import { checkMtu, checkOwner, normEnd, type WantEnd } from './spec.js';
import type { Side, TunnelSpec, VxlanTunnelSpec, WireguardTunnelSpec } from './types.js';

export const MAX_VNI = 16_777_215;

/** The tunnel parameters after validation: the spec's own shape, in canonical forms (IPs as the kernel prints them, keys as WireGuard base64). */
export type WantVxlan = VxlanTunnelSpec;
export type WantWireguard = WireguardTunnelSpec;

export type WantTunnelParams = WantVxlan | WantWireguard;

export interface WantTunnel {
  /** The owner as written in aliases (scoped by the Linux data plane). */
  owner: string;
  side: Side;
  end: WantEnd;
  tunnel: WantTunnelParams;
  mtu?: number;
}

/** The kernel's link kind of a tunnel end. */
export function linkKindOf(kind: 'vxlan' | 'wireguard'): 'vxlan' | 'tun' {
  return kind === 'vxlan' ? 'vxlan' : 'tun';
}

function checkPort(field: string, v: unknown): number {
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 65535) throw new InvalidArgumentError(field, v, 'must be an integer port in 1..65535');
  return v as number;
}

function checkIp(field: string, v: unknown): { text: string; family: 4 | 6 } {
  const ip = typeof v === 'string' ? tryParseIp(v) : undefined;
  if (!ip) throw new InvalidArgumentError(field, v, 'not an IP address');
  return { text: formatIp(ip), family: ip.family };
}

/** A WireGuard key: 32 bytes in standard base64 (44 characters). A `secret` one is never quoted in the error. */
export function checkKey(field: string, v: unknown, secret = false): string {
  const ok = typeof v === 'string' && /^[A-Za-z0-9+/]{43}=$/.test(v) && Buffer.from(v, 'base64').length === 32;
  if (!ok) throw new InvalidArgumentError(field, secret && typeof v === 'string' ? `<${v.length} characters, not shown>` : v, 'not a WireGuard key (32 bytes, base64)');
  return v as string;
}

function ipPair(t: { localIp?: unknown; remoteIp?: unknown }): { localIp: string; remoteIp: string } {
  const local = checkIp('tunnel.localIp', t.localIp);
  const remote = checkIp('tunnel.remoteIp', t.remoteIp);
  if (local.family !== remote.family) throw new InvalidArgumentError('tunnel.remoteIp', t.remoteIp, `address family differs from tunnel.localIp ${local.text}`);
  return { localIp: local.text, remoteIp: remote.text };
}

function normTunnel(t: TunnelSpec['tunnel']): WantTunnelParams {
  if (!t || typeof t !== 'object') throw new InvalidArgumentError('tunnel', t, 'missing tunnel parameters');
  if (t.kind === 'vxlan') {
    if (!Number.isInteger(t.vni) || t.vni < 1 || t.vni > MAX_VNI) throw new InvalidArgumentError('tunnel.vni', t.vni, `must be an integer in 1..${MAX_VNI}`);
    const ips = ipPair(t);
    return { kind: 'vxlan', vni: t.vni, ...ips, port: checkPort('tunnel.port', t.port) };
  }
  if (t.kind === 'wireguard') {
    const ips = ipPair(t);
    return {
      kind: 'wireguard',
      privateKey: checkKey('tunnel.privateKey', t.privateKey, true),
      peerPublicKey: checkKey('tunnel.peerPublicKey', t.peerPublicKey),
      localIp: ips.localIp,
      listenPort: checkPort('tunnel.listenPort', t.listenPort),
      remoteIp: ips.remoteIp,
      remotePort: checkPort('tunnel.remotePort', t.remotePort),
    };
  }
  throw new InvalidArgumentError('tunnel.kind', (t as { kind?: unknown }).kind, 'must be "vxlan" or "wireguard"');
}

/** Validates a tunnel spec; every error is an InvalidArgumentError naming the field (`end.name`, `tunnel.vni`, …). */
export function normalizeTunnelSpec(spec: TunnelSpec): WantTunnel {
  checkOwner(spec?.owner);
  if (spec.side !== 'nsc' && spec.side !== 'nse') throw new InvalidArgumentError('side', spec.side, 'must be "nsc" or "nse"');
  checkMtu(spec.mtu);
  const end = normEnd(spec.end, spec.side, spec.owner, 'end');
  const tunnel = normTunnel(spec.tunnel);
  return { owner: spec.owner, side: spec.side, end, tunnel, ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}) };
}

/**
 * The name of the device in the tunnel netns before it moves into the pod (and, for WireGuard, the
 * name of its UAPI socket for good): derived from the owner as written in the alias and the side, so a
 * restarted forwarder finds it again. 15 characters.
 */
export function tunnelTmpName(kind: 'vxlan' | 'wireguard', owner: string, side: Side): string {
  return `${kind === 'vxlan' ? 'nsmvx' : 'nsmwg'}${createHash('sha256').update(`${owner}:${side}`).digest('hex').slice(0, 10)}`;
}

/** WireGuard base64 key → the hex form of the UAPI protocol. */
export function keyHex(b64: string): string {
  return Buffer.from(b64, 'base64').toString('hex');
}

/** The UAPI protocol's hex key → WireGuard base64. */
export function keyB64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

/** PKCS#8 DER of an X25519 private key, before its 32 bytes (RFC 8410). */
const X25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The X25519 public key (base64) of a private key (base64). */
export function publicKeyOf(privateKeyB64: string): string {
  const der = Buffer.concat([X25519_PKCS8_PREFIX, Buffer.from(privateKeyB64, 'base64')]);
  const pub = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
  return pub.subarray(pub.length - 32).toString('base64');
}

/** The endpoint as UAPI writes it: `ip:port`, `[ip6]:port`. */
export function endpointOf(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
