import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { TunnelSpec } from './types.js';
import { endpointOf, keyB64, keyHex, normalizeTunnelSpec, publicKeyOf, tunnelTmpName } from './tunnel-spec.js';

const K = Buffer.alloc(32, 7).toString('base64');
const vx: TunnelSpec = { owner: 'c1', side: 'nsc', end: { netns: 'a', name: 'nsm-1', addrs: ['172.16.1.1/32'], routes: [] }, tunnel: { kind: 'vxlan', vni: 10, localIp: '10.0.0.1', remoteIp: '10.0.0.2', port: 4789 } };
const wg: TunnelSpec = { ...vx, tunnel: { kind: 'wireguard', privateKey: K, peerPublicKey: K, localIp: 'FD00:0::1', listenPort: 51820, remoteIp: 'fd00::2', remotePort: 51821 } };

test('tunnel spec: canonical forms (IPs as the kernel prints them), the end under `end`', () => {
  const w = normalizeTunnelSpec(wg);
  assert.equal(w.end.alias, 'nsm-ts:c1:nsc');
  assert.deepEqual(w.tunnel, { kind: 'wireguard', privateKey: K, peerPublicKey: K, localIp: 'fd00::1', listenPort: 51820, remoteIp: 'fd00::2', remotePort: 51821 });
  assert.deepEqual(normalizeTunnelSpec({ ...vx, mtu: 1450 }).mtu, 1450);
});

test('tunnel spec: bad input names the field', () => {
  const t = vx.tunnel as Extract<TunnelSpec['tunnel'], { kind: 'vxlan' }>;
  const cases: Array<[string, unknown]> = [
    ['tunnel.vni', { ...vx, tunnel: { ...t, vni: 0 } }],
    ['tunnel.vni', { ...vx, tunnel: { ...t, vni: 1.5 } }],
    ['tunnel.vni', { ...vx, tunnel: { ...t, vni: 16_777_216 } }],
    ['tunnel.port', { ...vx, tunnel: { ...t, port: 0 } }],
    ['tunnel.port', { ...vx, tunnel: { ...t, port: 65536 } }],
    ['tunnel.localIp', { ...vx, tunnel: { ...t, localIp: '10.0.0.256' } }],
    ['tunnel.remoteIp', { ...vx, tunnel: { ...t, remoteIp: '::1' } }],
    ['tunnel.privateKey', { ...wg, tunnel: { ...wg.tunnel, privateKey: Buffer.alloc(33).toString('base64') } }],
    ['tunnel.peerPublicKey', { ...wg, tunnel: { ...wg.tunnel, peerPublicKey: `${K.slice(0, 42)}!=` } }],
    ['tunnel.remotePort', { ...wg, tunnel: { ...wg.tunnel, remotePort: -1 } }],
    ['tunnel.kind', { ...vx, tunnel: { kind: 'gre' } }],
    ['tunnel', { ...vx, tunnel: undefined }],
    ['end', { ...vx, end: undefined }],
    ['end.netns', { ...vx, end: { ...vx.end, netns: '' } }],
    ['end.routes[0].prefix', { ...vx, end: { ...vx.end, routes: [{ prefix: 'x' }] } }],
    ['side', { ...vx, side: 'both' }],
    ['owner', { ...vx, owner: 'a"b' }],
    ['mtu', { ...vx, mtu: 65536 }],
  ];
  for (const [field, spec] of cases) {
    assert.throws(() => normalizeTunnelSpec(spec as TunnelSpec), (e: Error & { field?: string }) => e.name === 'InvalidArgumentError' && e.field === field, field);
  }
});

test('tunnel spec: a private key never appears in an error', () => {
  const secret = Buffer.alloc(32, 9).toString('base64');
  const spec = { ...wg, tunnel: { ...wg.tunnel, privateKey: secret, listenPort: 0 } } as TunnelSpec;
  assert.throws(() => normalizeTunnelSpec(spec), (e: Error) => !e.message.includes(secret));
  assert.throws(() => normalizeTunnelSpec({ ...wg, tunnel: { ...wg.tunnel, privateKey: `${secret.slice(0, 43)}?` } } as TunnelSpec), (e: Error) => !e.message.includes(secret.slice(0, 43)));
});

test('tunnel spec: tmp names are 15 characters, stable per owner and side, distinct per kind', () => {
  const a = tunnelTmpName('wireguard', 'fwd/c1', 'nsc');
  assert.match(a, /^nsmwg[0-9a-f]{10}$/);
  assert.equal(a, tunnelTmpName('wireguard', 'fwd/c1', 'nsc'));
  assert.notEqual(a, tunnelTmpName('wireguard', 'fwd/c1', 'nse'));
  assert.match(tunnelTmpName('vxlan', 'fwd/c1', 'nsc'), /^nsmvx[0-9a-f]{10}$/);
});

test('tunnel spec: WireGuard keys, hex and base64, the public key of a private key', () => {
  const k = generateKeyPairSync('x25519');
  const priv = Buffer.from(k.privateKey.export({ format: 'jwk' }).d!, 'base64url').toString('base64');
  const pub = Buffer.from(k.publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
  assert.equal(publicKeyOf(priv), pub);
  assert.equal(keyB64(keyHex(priv)), priv);
  assert.match(keyHex(priv), /^[0-9a-f]{64}$/);
  assert.equal(endpointOf('10.0.0.1', 5), '10.0.0.1:5');
  assert.equal(endpointOf('fd00::1', 5), '[fd00::1]:5');
});
