/**
 * Validation and normalization of a `PairSpec`, and the alias that proves ownership. Shared by every
 * data-plane implementation so they agree on what is valid and on canonical forms (the kernel prints
 * `fd00::1`, a spec may say `FD00:0::1`), and the ownership checks both apply to the links they find.
 */
import { AlreadyExistsError, InvalidArgumentError } from '../core/errors.js';
import { familyBits, formatCidr, formatIp, formatIpWithPrefix, tryParseCidr, tryParseIp, type IpFamily } from '../api/cidr.js';
import type { EndSpec, PairSpec, Side } from './types.js';

export const ALIAS_PREFIX = 'nsm-ts:';

export interface WantAddr {
  family: IpFamily;
  /** Canonical `ip/prefix` (host bits kept). */
  cidr: string;
  local: string;
  prefixlen: number;
}

export interface WantRoute {
  family: IpFamily;
  /** Canonical network prefix (`10.0.0.0/8`, `fd00::1/128`). */
  prefix: string;
  via?: string;
}

export interface WantEnd {
  side: Side;
  netns: string;
  name: string;
  alias: string;
  addrs: WantAddr[];
  routes: WantRoute[];
}

export interface WantPair {
  owner: string;
  nsc: WantEnd;
  nse: WantEnd;
  mtu?: number;
}

export function aliasFor(owner: string, side: Side): string {
  return `${ALIAS_PREFIX}${owner}:${side}`;
}

/** Parses an nsm-ts alias; undefined when the alias is not ours. */
export function parseAlias(alias: string | undefined): { owner: string; side: Side } | undefined {
  if (!alias || !alias.startsWith(ALIAS_PREFIX)) return undefined;
  const rest = alias.slice(ALIAS_PREFIX.length);
  const i = rest.lastIndexOf(':');
  if (i <= 0) return undefined;
  const side = rest.slice(i + 1);
  if (side !== 'nsc' && side !== 'nse') return undefined;
  return { owner: rest.slice(0, i), side };
}

/** What the ownership checks need to know of a link, kernel or fake. */
export interface LinkIdentity {
  ifindex: number;
  alias?: string;
  kind?: string;
}

/**
 * A link named like the end exists and is not `owner`'s to take: it is not nsm-ts's (no nsm-ts alias), or
 * it carries the alias of another connection that is `live` (held, or with an operation running).
 * Refuse with AlreadyExistsError naming the interface, the netns and the owner, and touch nothing. A link
 * of a connection not live (an orphan) may be replaced.
 */
export function checkFree(link: LinkIdentity | undefined, end: WantEnd, owner: string, live: (owner: string) => boolean): void {
  if (!link) return;
  const a = parseAlias(link.alias);
  if (!a) {
    const who = link.alias ? `alias "${link.alias}"` : 'no alias';
    throw new AlreadyExistsError(`${end.side} interface ${end.name} already exists in netns ${end.netns} and is not owned by nsm-ts (${who}, ifindex ${link.ifindex}); refusing to touch it`);
  }
  if (a.owner !== owner && live(a.owner)) {
    throw new AlreadyExistsError(`${end.side} interface ${end.name} already exists in netns ${end.netns}: it belongs to connection ${a.owner}`);
  }
}

/** The link is a `kind` link (a veth unless told) carrying the alias of `owner`'s `side`. */
export function isOurs<T extends LinkIdentity>(link: T | undefined, owner: string, side: Side, kind = 'veth'): link is T {
  const a = parseAlias(link?.alias);
  return !!link && !!a && a.owner === owner && a.side === side && link.kind === kind;
}

const OWNER_RE = /^[\x21-\x7e]{1,200}$/;
const IFNAME_RE = /^[^\s/:"'\\]{1,15}$/;

/** Canonical `ip/prefix` of an interface address (a bare IP is a host address). */
export function normAddr(s: string, field: string): WantAddr {
  const c = tryParseCidr(s);
  if (c) return { family: c.family, cidr: formatIpWithPrefix(c), local: formatIp(c.ip, c.family), prefixlen: c.prefix };
  const ip = tryParseIp(s);
  if (ip) {
    const local = formatIp(ip);
    return { family: ip.family, cidr: `${local}/${familyBits(ip.family)}`, local, prefixlen: familyBits(ip.family) };
  }
  throw new InvalidArgumentError(field, s, 'not an IP address with prefix (e.g. 172.16.1.101/32)');
}

/** Canonical route prefix (`default` is accepted and becomes 0.0.0.0/0 or ::/0 by the via's family). */
export function normRoute(prefix: string, via: string | undefined, field: string): WantRoute {
  const c = tryParseCidr(prefix) ?? (tryParseIp(prefix) ? tryParseCidr(`${prefix}/${familyBits(tryParseIp(prefix)!.family)}`) : undefined);
  if (!c) throw new InvalidArgumentError(`${field}.prefix`, prefix, 'not a valid CIDR');
  if (via === undefined || via === '') return { family: c.family, prefix: formatCidr(c) };
  const g = tryParseIp(via);
  if (!g) throw new InvalidArgumentError(`${field}.via`, via, 'not a valid IP address');
  if (g.family !== c.family) throw new InvalidArgumentError(`${field}.via`, via, `next hop family differs from prefix ${prefix}`);
  return { family: c.family, prefix: formatCidr(c), via: formatIp(g) };
}

/** An interface name the kernel takes: 1-15 characters, no whitespace, "/", ":" or quotes, not . or ..; `field` names it in the error. */
export function checkInterfaceName(field: string, name: unknown): void {
  if (typeof name !== 'string' || !IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new InvalidArgumentError(field, name, 'not a valid interface name (1-15 chars, no whitespace, "/", ":" or quotes, not . or ..)');
  }
}

/** Normalizes one end; errors name fields under `field` (the side by default: `nsc.addrs[0]`). */
export function normEnd(e: EndSpec, side: Side, owner: string, field: string = side): WantEnd {
  if (!e || typeof e !== 'object') throw new InvalidArgumentError(field, e, 'missing end');
  if (typeof e.netns !== 'string' || e.netns === '') throw new InvalidArgumentError(`${field}.netns`, e.netns, 'missing netns URL');
  checkInterfaceName(`${field}.name`, e.name);
  const addrs = new Map<string, WantAddr>();
  (e.addrs ?? []).forEach((a, i) => {
    const n = normAddr(a, `${field}.addrs[${i}]`);
    addrs.set(n.cidr, n);
  });
  const routes = new Map<string, WantRoute>();
  (e.routes ?? []).forEach((r, i) => {
    const n = normRoute(r.prefix, r.via, `${field}.routes[${i}]`);
    routes.delete(n.prefix);
    routes.set(n.prefix, n);
  });
  return { side, netns: e.netns, name: e.name, alias: aliasFor(owner, side), addrs: [...addrs.values()], routes: [...routes.values()] };
}

/** The owner (connection id) rule of every spec. */
export function checkOwner(owner: unknown): asserts owner is string {
  if (typeof owner !== 'string' || !OWNER_RE.test(owner) || /["'\\#]/.test(owner)) {
    throw new InvalidArgumentError('owner', owner, 'must be 1-200 printable characters without whitespace, quotes, backslashes or "#"');
  }
}

/** The MTU rule of every spec (unset: the kernel's default). */
export function checkMtu(mtu: unknown): void {
  if (mtu !== undefined && (!Number.isInteger(mtu) || (mtu as number) < 68 || (mtu as number) > 65535)) {
    throw new InvalidArgumentError('mtu', mtu, 'must be an integer in 68..65535');
  }
}

/** Validates a spec; every error is an InvalidArgumentError naming the field. */
export function normalizeSpec(spec: PairSpec): WantPair {
  checkOwner(spec?.owner);
  checkMtu(spec.mtu);
  const nsc = normEnd(spec.nsc, 'nsc', spec.owner);
  const nse = normEnd(spec.nse, 'nse', spec.owner);
  return { owner: spec.owner, nsc, nse, ...(spec.mtu !== undefined ? { mtu: spec.mtu } : {}) };
}
