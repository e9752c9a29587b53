/**
 * Data-plane checks of interfaces, for the NSC's heal code: `readNetns` is one `ip -j` exec (links,
 * addresses, routes of the whole netns) from which `interfaceIn` picks any number of interfaces, so many
 * connections of one netns share one read; `readInterface` is both for one interface; `watchLinks` yields
 * a notice per burst of kernel link/address/route events from a long-lived `ip monitor`, so heal can
 * react without polling.
 */
import { silentLogger, type Logger } from '../../core/log.js';
import type { InterfaceState } from '../types.js';
import { Ip, SELF, type MonitorNotice, type NetnsPath } from './ip.js';
import { STATE_READ_LINES, managedRoutes, parseState, type NetnsState } from './state.js';

export type { MonitorNotice };

export type { InterfaceState, NetnsState };

export interface InspectDeps {
  log?: Logger;
  signal?: AbortSignal;
}

const ABSENT: InterfaceState = Object.freeze({ exists: false, up: false, carrier: false, operstate: 'ABSENT', ifindex: 0, mac: '', mtu: 0, addrs: [], routes: [] }) as InterfaceState;

/** Reads the links, addresses and routes of `netns` (a path to a netns file, or 'self') in one exec. */
export async function readNetns(netns: NetnsPath | 'self', deps: InspectDeps & { target?: string } = {}): Promise<NetnsState> {
  const ip = new Ip(deps.log ?? silentLogger);
  const r = await ip.read(netns, STATE_READ_LINES, { op: 'read interface', target: deps.target ?? '*', ...(deps.signal ? { signal: deps.signal } : {}) });
  return parseState(r.json);
}

/** Interface `name` as `state` (from `readNetns`) has it. */
export function interfaceIn(s: NetnsState, name: string): InterfaceState {
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

/** Reads interface `name` in `netns` (a path to a netns file, or 'self'). */
export async function readInterface(netns: NetnsPath | 'self', name: string, deps: InspectDeps = {}): Promise<InterfaceState> {
  return interfaceIn(await readNetns(netns, { ...deps, target: name }), name);
}

/** Kernel link/address/route change notices in `netns` until `signal` aborts. */
export function watchLinks(netns: NetnsPath | 'self', signal: AbortSignal, deps: { log?: Logger } = {}): AsyncIterable<MonitorNotice> {
  const ip = new Ip(deps.log ?? silentLogger);
  return ip.monitor(netns === 'self' ? SELF : netns, ['link', 'address', 'route'], signal);
}
