/**
 * NSM_TUNNEL_IP must be an address of the forwarder's own network namespace (the node's), since the
 * VXLAN devices and WireGuard sockets of remote connections are bound to it there. Checked once at start
 * by binding a UDP socket to it (port 0, nothing is sent): the kernel refuses an address that is not
 * local (EADDRNOTAVAIL).
 */
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import { ConfigError } from '../../core/errors.js';

/** True when `ip` can be bound in this process's network namespace. */
export function isLocalAddress(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket(isIP(ip) === 6 ? 'udp6' : 'udp4');
    const done = (ok: boolean) => sock.close(() => resolve(ok));
    sock.once('error', () => done(false));
    sock.bind({ address: ip, port: 0, exclusive: true }, () => done(true));
  });
}

/** Throws a ConfigError naming NSM_TUNNEL_IP when `ip` is set and not an address of this node. */
export async function checkTunnelIp(ip: string, isLocal: (ip: string) => Promise<boolean> = isLocalAddress): Promise<void> {
  if (ip && !(await isLocal(ip))) throw new ConfigError('NSM_TUNNEL_IP', ip, 'not an address of this node (the forwarder\'s network namespace); set it to the node\'s tunnel address or leave it empty for no remote mechanisms');
}
