/**
 * `groupIpamServer(groups)` — one point-to-point IPAM per `NSM_CIDR_PREFIX` group (`[a,b],c`), chained;
 * with `policy: 'strict'` a `strictIpamServer` over all prefixes runs first. `parseCidrGroups` reads the
 * group syntax.
 *
 * Placement: endpoint server chain, where a single IPAM would be. State lives in the inner IPAMs; no
 * background work. Mirrors `sdk/pkg/networkservice/ipam/groupipam`.
 */
import { tryParseCidr } from '../../api/cidr.js';
import { type NetworkServiceElement, networkServiceChain } from '../../core/chain.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { DEFAULT_PREFIX_FIELD, type Point2PointIpamOptions } from './ip-context.js';
import { POINT2POINT_IPAM, point2pointIpamServer } from './point2point.js';
import { DEFAULT_IPAM_POLICY, IPAM_POLICIES, type IpamPolicy, strictIpamServer } from './policy.js';

export const GROUP_IPAM = 'group-ipam';

/**
 * Parses the `NSM_CIDR_PREFIX` group syntax: `a,b` are separate groups, `[a,b],c` puts a and b in one
 * group. Each entry must be a valid CIDR; errors name `field` and the value.
 */
export function parseCidrGroups(value: string, field = DEFAULT_PREFIX_FIELD): string[][] {
  const fail = (reason: string): never => {
    throw new InvalidArgumentError(field, value, reason);
  };
  if (typeof value !== 'string' || value.trim() === '') fail('at least one CIDR prefix is required');
  const groups: string[][] = [];
  let current: string[] | undefined;
  let token = '';
  const flushToken = (): void => {
    const t = token.trim();
    token = '';
    if (t === '') return;
    if (!tryParseCidr(t)) fail(`"${t}" is not a valid CIDR`);
    if (current) current.push(t);
    else groups.push([t]);
  };
  for (const ch of value) {
    if (ch === '[') {
      if (current) fail('nested "[" is not allowed');
      if (token.trim() !== '') fail('"[" must start a new entry');
      current = [];
    } else if (ch === ']') {
      if (!current) fail('unmatched "]"');
      flushToken();
      if (current!.length === 0) fail('empty group "[]"');
      groups.push(current!);
      current = undefined;
    } else if (ch === ',') {
      flushToken();
    } else {
      token += ch;
    }
  }
  if (current) fail('unterminated "["');
  flushToken();
  if (groups.length === 0) fail('at least one CIDR prefix is required');
  return groups;
}

export interface GroupIpamOptions extends Point2PointIpamOptions {
  /** `polite` (default): accept requested addresses that are in a pool; `strict`: reset them if any is not. */
  readonly policy?: IpamPolicy;
}

export function groupIpamServer(groups: readonly (readonly string[])[], options: GroupIpamOptions = {}): NetworkServiceElement {
  const config = Object.freeze({ field: options.field ?? DEFAULT_PREFIX_FIELD, policy: options.policy ?? DEFAULT_IPAM_POLICY });
  if (!IPAM_POLICIES.includes(config.policy)) throw new InvalidArgumentError('NSM_IPAM_POLICY', config.policy, `must be one of ${IPAM_POLICIES.join(', ')}`);
  if (groups.length === 0) throw new InvalidArgumentError(config.field, groups, 'at least one CIDR group is required');
  const inner: NetworkServiceElement[] = [];
  if (config.policy === 'strict') inner.push(strictIpamServer(groups.flat(), { field: config.field }));
  groups.forEach((g, i) => inner.push({ ...point2pointIpamServer(g, { field: config.field }), name: `${POINT2POINT_IPAM}-${i}` }));
  return {
    name: GROUP_IPAM,
    provides: ['ipam'],
    request: (req, ctx, next) => networkServiceChain(GROUP_IPAM, inner, { tail: next }).request(req, ctx),
    close: (conn, ctx, next) => networkServiceChain(GROUP_IPAM, inner, { tail: next }).close(conn, ctx),
  };
}
