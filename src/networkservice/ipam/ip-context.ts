/**
 * What the IPAM elements share: parsing the configured prefixes and the request's exclusions, and adding
 * or removing entries of an `IPContext` without duplicates.
 */
import type { IPContext } from '../../api/gen/connectioncontext.js';
import { type Cidr, type IpFamily, familyBits, firstAddress, formatIp, lastAddress, parseAddressOrCidr, parseCidr, tryParseCidr, tryParseIp } from '../../api/cidr.js';
import { InvalidArgumentError } from '../../core/errors.js';
import type { Range } from './pool.js';

/** Field named in errors about the configured prefixes. */
export const DEFAULT_PREFIX_FIELD = 'NSM_CIDR_PREFIX';

export interface Point2PointIpamOptions {
  /** Name of the configuration field the prefixes come from (for error messages). */
  readonly field?: string;
}

export function parsePrefixes(prefixes: readonly string[], field: string): Cidr[] {
  if (!Array.isArray(prefixes) || prefixes.length === 0) throw new InvalidArgumentError(field, prefixes, 'at least one CIDR prefix is required');
  return prefixes.map((p) => parseCidr(p, field));
}

/** The request's `excluded_prefixes` as address ranges per family. */
export function excludedRanges(ipc: IPContext): Map<IpFamily, Range[]> {
  const out = new Map<IpFamily, Range[]>([[4, []], [6, []]]);
  for (const p of ipc.excludedPrefixes) {
    const c = parseAddressOrCidr(p, 'excluded_prefixes');
    out.get(c.family)!.push([firstAddress(c), lastAddress(c)]);
  }
  return out;
}

/** `a.b.c.d/32` (or `/128`) for a host address. */
export function hostString(v: bigint, family: IpFamily): string {
  return `${formatIp(v, family)}/${familyBits(family)}`;
}

/** The address part of an ip-context entry (`a.b.c.d/32` or a bare address). */
export function addressOf(entry: string): { family: IpFamily; value: bigint } | undefined {
  const c = tryParseCidr(entry);
  if (c) return { family: c.family, value: c.ip };
  return tryParseIp(entry);
}

export function addUnique(list: string[], v: string): void {
  if (!list.includes(v)) list.push(v);
}

export function addRoute(ipc: IPContext, which: 'srcRoutes' | 'dstRoutes', prefix: string): void {
  if (!ipc[which].some((r) => r.prefix === prefix)) ipc[which].push({ prefix, nextHop: '' });
}

export function removeEntry(list: string[], v: string): void {
  const i = list.indexOf(v);
  if (i >= 0) list.splice(i, 1);
}

export function removeRoute(ipc: IPContext, which: 'srcRoutes' | 'dstRoutes', prefix: string): void {
  const i = ipc[which].findIndex((r) => r.prefix === prefix);
  if (i >= 0) ipc[which].splice(i, 1);
}
