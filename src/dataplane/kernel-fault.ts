/**
 * The one rule that decides whether the kernel state of a connection's client interface is faulty,
 * shared by the linux probe (state read with `ip -j`) and the fake probe (state read from the
 * FakeDataPlane). Pure: no I/O, no clock.
 *
 * In order, the first that holds is the fault: the interface is missing; it is admin down; it has no
 * carrier (the veth peer is missing or down); an address of `src_ip_addrs` is missing; a destination of
 * `dst_ip_addrs` has no route on the interface.
 *
 * On-link destinations: a destination counts as routed when a route on the interface contains it, or
 * when an address on the interface with a prefix shorter than a host route (its own address aside)
 * contains it. The data plane adds no route for a peer inside the client's own subnet (`ipcontext.ts`:
 * "each dst net not contained in a src net"); the kernel's connected route of the address carries that
 * traffic, and `readInterface` leaves such kernel routes out, so a rule that asked for an explicit route
 * would call a healthy connection faulty. A route to the peer's network (`172.16.2.0/24` for a
 * `172.16.2.100/24` peer outside the client's subnet) counts too, since that is the route the data plane
 * installs for it.
 */
import type { Connection } from '../api/gen/connection.js';
import { familyBits, tryParseCidr, tryParseIp, type IpFamily } from '../api/cidr.js';
import { MECH_KERNEL, PARAM_INODE_URL, PARAM_NAME } from '../api/constants.js';
import type { KernelFaultReason, Observation } from './probe.js';
import type { InterfaceState } from './types.js';

/** What the data plane should have made of a connection's client interface. */
export interface ExpectedInterface {
  /** The client's netns as the mechanism's `inodeURL` carries it, when it does. */
  readonly netns?: string;
  readonly ifname: string;
  /** `src_ip_addrs`: addresses on the interface. */
  readonly src: readonly string[];
  /** `dst_ip_addrs`: peers that must be routed through the interface. */
  readonly dst: readonly string[];
}

/** The part of an interface's kernel state the rule looks at. */
export type ObservedInterface = Pick<InterfaceState, 'exists' | 'up' | 'carrier' | 'addrs' | 'routes'>;

export interface KernelFault {
  readonly reason: Exclude<KernelFaultReason, 'unreadable'>;
  readonly detail: string;
}

/** The expected interface of a kernel-mechanism connection; undefined for any other connection. */
export function expectedInterface(conn: Connection): ExpectedInterface | undefined {
  const m = conn.mechanism;
  if (m?.type !== MECH_KERNEL) return undefined;
  const ifname = m.parameters[PARAM_NAME];
  if (!ifname) return undefined;
  const ipc = conn.context?.ipContext;
  const netns = m.parameters[PARAM_INODE_URL];
  return { ...(netns ? { netns } : {}), ifname, src: ipc?.srcIpAddrs ?? [], dst: ipc?.dstIpAddrs ?? [] };
}

/** The kernel fault of the interface, or undefined when it is as expected. */
export function kernelFault(want: ExpectedInterface, seen: ObservedInterface): KernelFault | undefined {
  const name = want.ifname;
  if (!seen.exists) return { reason: 'missing', detail: `interface ${name} is missing` };
  if (!seen.up) return { reason: 'down', detail: `interface ${name} is down` };
  if (!seen.carrier) return { reason: 'no-carrier', detail: `interface ${name} has no carrier (peer down)` };
  const have = new Set(seen.addrs.map(ipKey));
  for (const a of want.src) if (!have.has(ipKey(a))) return { reason: 'address-missing', detail: `address ${a} missing on ${name}` };
  for (const d of want.dst) if (!routed(seen, d)) return { reason: 'route-missing', detail: `route to ${bareAddress(d)} missing on ${name}` };
  return undefined;
}

/** The observation a kernel fault (or its absence) makes. */
export function kernelObservation(fault: KernelFault | undefined): Observation {
  return fault ? { ok: false, source: 'kernel', detail: fault.detail, reason: fault.reason } : { ok: true };
}

/** The address of `ip/prefix` (or of a bare address). */
export const bareAddress = (cidr: string): string => cidr.split('/')[0]!;

interface Ip {
  family: IpFamily;
  value: bigint;
}

function parse(s: string): Ip | undefined {
  const c = tryParseCidr(s);
  return c ? { family: c.family, value: c.ip } : tryParseIp(bareAddress(s));
}

/** One key per address whatever its spelling or prefix length (`FD00:0::1/64` and `fd00::1` agree). */
function ipKey(s: string): string {
  const ip = parse(s);
  return ip ? `${ip.family}:${ip.value}` : s;
}

function within(prefix: string, ip: Ip): boolean {
  const c = tryParseCidr(prefix) ?? (tryParseIp(prefix) ? tryParseCidr(`${prefix}/${familyBits(tryParseIp(prefix)!.family)}`) : undefined);
  if (!c || c.family !== ip.family) return false;
  const hostBits = BigInt(familyBits(c.family) - c.prefix);
  return ip.value >> hostBits === c.network >> hostBits;
}

function routed(seen: ObservedInterface, dst: string): boolean {
  const ip = parse(dst);
  if (!ip) return false;
  if (seen.routes.some((r) => within(r.prefix, ip))) return true;
  return seen.addrs.some((a) => {
    const c = tryParseCidr(a);
    return !!c && c.prefix < familyBits(c.family) && c.ip !== ip.value && within(a, ip);
  });
}
