/**
 * NSURL parsing: `[mechanism://]ns[@domain][/ifname][?label=v&…]`, the form of each entry of
 * `NSM_NETWORK_SERVICES` (and of the `networkservicemesh.io` pod annotation). The scheme names the
 * mechanism type (`kernel` → `KERNEL`, `vfio` → `VFIO`, …; no scheme → `KERNEL`, cmd-nsc's default), the
 * last path element is the interface name, query parameters become request labels (repeated keys are
 * joined with `,`). Every error is an `InvalidArgumentError` naming `NSM_NETWORK_SERVICES` and the value.
 * Mirrors upstream `sdk/pkg/tools/nsurl`.
 */
import { InvalidArgumentError } from './errors.js';
import type { Mechanism } from './gen/connection.js';
import { CLS_LOCAL, LINUX_IF_MAX_LENGTH, PARAM_NAME } from './constants.js';

export const NSURL_FIELD = 'NSM_NETWORK_SERVICES';

/** URL scheme → mechanism type (upstream api `mechanisms/*` constants). */
export const NSURL_SCHEMES: Readonly<Record<string, string>> = Object.freeze({
  kernel: 'KERNEL',
  vfio: 'VFIO',
  memif: 'MEMIF',
  noop: 'NOOP',
  vxlan: 'VXLAN',
  wireguard: 'WIREGUARD',
  ipsec: 'IPSEC',
  vlan: 'VLAN',
  srv6: 'SRV6',
});

export type MechanismType = 'KERNEL' | 'VFIO' | 'MEMIF' | 'NOOP' | 'VXLAN' | 'WIREGUARD' | 'IPSEC' | 'VLAN' | 'SRV6';

export interface NsUrl {
  /** Mechanism type from the scheme; `KERNEL` when no scheme was given. */
  readonly mechanism: MechanismType;
  /** Whether the URL carried a scheme. */
  readonly explicitMechanism: boolean;
  /** The service name without the domain. */
  readonly networkService: string;
  readonly domain?: string;
  /** `ns@domain` (or `ns`): the value for `connection.network_service`. */
  readonly qualifiedNetworkService: string;
  readonly interfaceName?: string;
  readonly labels: Readonly<Record<string, string>>;
}

const NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9_])?$/;
const DOMAIN_RE = /^[A-Za-z0-9]([A-Za-z0-9._:-]*[A-Za-z0-9])?$/;
/** Linux allows more, but anything outside this set breaks tools and sysfs paths in practice. */
const IFNAME_RE = /^[A-Za-z0-9_.-]+$/;

/** Validates a Linux interface name (≤ 15 chars, `[A-Za-z0-9_.-]`, not `.`/`..`); returns a reason or undefined. */
export function interfaceNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'interface name is empty';
  if (name.length > LINUX_IF_MAX_LENGTH) return `interface name "${name}" is longer than ${LINUX_IF_MAX_LENGTH} characters`;
  if (!IFNAME_RE.test(name) || name === '.' || name === '..') return `interface name "${name}" has invalid characters (allowed: A-Z a-z 0-9 _ . -)`;
  return undefined;
}

function decode(s: string, raw: string, what: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    throw new InvalidArgumentError(NSURL_FIELD, raw, `${what} is not valid percent-encoding`);
  }
}

/** Parses one NSURL. */
export function parseNsUrl(raw: string): NsUrl {
  const fail = (reason: string): never => {
    throw new InvalidArgumentError(NSURL_FIELD, raw, reason);
  };
  if (typeof raw !== 'string') fail('network service URL must be a string');
  const s = raw.trim();
  if (s === '') fail('network service URL is empty');

  let rest = s;
  let mechanism: MechanismType = 'KERNEL';
  let explicitMechanism = false;
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(rest);
  if (schemeMatch) {
    const type = NSURL_SCHEMES[schemeMatch[1].toLowerCase()];
    if (!type) fail(`unknown mechanism scheme "${schemeMatch[1]}" (known: ${Object.keys(NSURL_SCHEMES).join(', ')})`);
    mechanism = type as MechanismType;
    explicitMechanism = true;
    rest = rest.slice(schemeMatch[0].length);
  } else if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(rest) && !rest.includes('@')) {
    fail('malformed scheme (expected "<mechanism>://")');
  }

  const hash = rest.indexOf('#');
  if (hash >= 0) fail('fragments ("#…") are not allowed');

  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }

  let path = '';
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    path = rest.slice(slash + 1);
    rest = rest.slice(0, slash);
  }

  let networkService = rest;
  let domain: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    networkService = rest.slice(0, at);
    domain = rest.slice(at + 1);
    if (domain === '' || !DOMAIN_RE.test(domain)) fail(`invalid domain "${domain}"`);
  }
  networkService = decode(networkService, raw, 'network service name');
  if (networkService === '') fail('network service name is missing');
  if (!NAME_RE.test(networkService)) fail(`invalid network service name "${networkService}"`);

  let interfaceName: string | undefined;
  if (path !== '') {
    const segments = path.split('/');
    const last = decode(segments[segments.length - 1], raw, 'interface name');
    if (last !== '') {
      const problem = interfaceNameProblem(last);
      if (problem) fail(problem);
      interfaceName = last;
    }
  }

  const labels: Record<string, string> = {};
  if (query !== '') {
    for (const pair of query.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const key = decode(eq >= 0 ? pair.slice(0, eq) : pair, raw, 'label key');
      const value = decode(eq >= 0 ? pair.slice(eq + 1) : '', raw, 'label value');
      if (key === '') fail('label with an empty key');
      labels[key] = key in labels ? `${labels[key]},${value}` : value;
    }
  }

  return Object.freeze({
    mechanism,
    explicitMechanism,
    networkService,
    ...(domain !== undefined ? { domain } : {}),
    qualifiedNetworkService: domain !== undefined ? `${networkService}@${domain}` : networkService,
    ...(interfaceName !== undefined ? { interfaceName } : {}),
    labels: Object.freeze(labels),
  });
}

/** Parses the comma-separated `NSM_NETWORK_SERVICES` value; at least one entry is required. */
export function parseNsUrlList(value: string): NsUrl[] {
  const entries = (value ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  if (entries.length === 0) throw new InvalidArgumentError(NSURL_FIELD, value, 'at least one network service URL is required');
  return entries.map(parseNsUrl);
}

/** The mechanism preference the NSC sends for this URL (`name` only if the URL has an interface name). */
export function nsUrlMechanism(u: NsUrl): Mechanism {
  return {
    cls: CLS_LOCAL,
    type: u.mechanism,
    parameters: u.interfaceName !== undefined ? { [PARAM_NAME]: u.interfaceName } : {},
  };
}
