/**
 * Data-plane checks of one interface, for the NSC's heal code: `readInterface` is one `ip -j` exec
 * (link, addresses, routes); `watchLinks` yields a notice per burst of kernel link/address/route events
 * from a long-lived `ip monitor`, so heal can react without polling.
 */
import { silentLogger, type Logger } from '../../core/log.js';
import type { InterfaceState } from '../types.js';
import { Ip, SELF, type MonitorNotice, type NetnsPath } from './ip.js';
import { STATE_READ_LINES, managedRoutes, parseState } from './state.js';

export type { MonitorNotice };

export type { InterfaceState };

export interface InspectDeps {
  log?: Logger;
  signal?: AbortSignal;
}

const ABSENT: InterfaceState = Object.freeze({ exists: false, up: false, carrier: false, operstate: 'ABSENT', ifindex: 0, mac: '', mtu: 0, addrs: [], routes: [] }) as InterfaceState;

/** Reads interface `name` in `netns` (a path to a netns file, or 'self'). */
export async function readInterface(netns: NetnsPath | 'self', name: string, deps: InspectDeps = {}): Promise<InterfaceState> {
  const ip = new Ip(deps.log ?? silentLogger);
  const r = await ip.read(netns, STATE_READ_LINES, { op: 'read interface', target: name, ...(deps.signal ? { signal: deps.signal } : {}) });
  const s = parseState(r.json);
  const l = s.links.get(name);
  if (!l) return { ...ABSENT, addrs: [], routes: [] };
  const out: InterfaceState = {
    exists: true,
    up: l.up,
    carrier: l.carrier,
    operstate: l.operstate,
    ifindex: l.ifindex,
    mac: l.mac,
    mtu: l.mtu,
    addrs: l.addrs.filter((a) => a.scope !== 'link').map((a) => a.cidr),
    routes: managedRoutes(s, name).map((k) => (k.gateway ? { prefix: k.prefix, via: k.gateway } : { prefix: k.prefix })),
  };
  if (l.alias !== undefined) out.alias = l.alias;
  return out;
}

/** Kernel link/address/route change notices in `netns` until `signal` aborts. */
export function watchLinks(netns: NetnsPath | 'self', signal: AbortSignal, deps: { log?: Logger } = {}): AsyncIterable<MonitorNotice> {
  const ip = new Ip(deps.log ?? silentLogger);
  return ip.monitor(netns === 'self' ? SELF : netns, ['link', 'address', 'route'], signal);
}
