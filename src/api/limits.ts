/**
 * Size limits of what a peer may send: names, ids, labels, paths, URLs, mechanism parameters and registry
 * queries, in one place. Upstream's API sets no lengths of its own (its only bound is gRPC's 4 MiB message
 * size, which nsm-ts keeps too), so each limit is chosen far above what upstream's components send and
 * cites where a real bound exists: Kubernetes object names (registry-k8s stores NetworkServices and
 * endpoints as custom resources: a DNS-1123 subdomain, ≤ 253 characters), Kubernetes label keys (≤ 253 +
 * `/` + 63), Linux interface names (15, checked by the kernel mechanism and the data plane).
 *
 * The `check*` functions throw an InvalidArgumentError naming the field by its wire name (e.g.
 * `connection.path.path_segments[2].id`) with an excerpt of the value; they look at sizes only, the
 * elements that use them check meaning.
 */
import type { Connection, Mechanism, MonitorScopeSelector, PathSegment } from './gen/connection.js';
import type { ConnectionContext } from './gen/connectioncontext.js';
import type { NetworkServiceRequest } from './gen/networkservice.js';
import type { NetworkService, NetworkServiceEndpoint } from './gen/registry.js';
import { InvalidArgumentError } from './errors.js';

/** Network service, endpoint, path segment and payload names; mechanism class and type (a Kubernetes object name). */
export const MAX_NAME_LENGTH = 253;
/** Connection and path segment ids, registry path ids (upstream sends UUIDs, 36 characters). */
export const MAX_ID_LENGTH = 253;
/** Entries of one label map (connection labels, endpoint labels per service, selectors, metrics, extra context). */
export const MAX_LABELS = 64;
/** A label key: the longest Kubernetes label key (253-character prefix, `/`, 63-character name). */
export const MAX_LABEL_KEY_LENGTH = 317;
/** A label value (node, pod and cluster names are ≤ 253; selectors may hold templates). */
export const MAX_LABEL_VALUE_LENGTH = 1024;
/** Segments of a connection path or a monitor selector (upstream: 4 on one node, 6 across nodes). */
export const MAX_PATH_SEGMENTS = 32;
/** A path segment's token (an ES256 JWT of upstream is under 1 KiB). */
export const MAX_TOKEN_LENGTH = 16 * 1024;
/** Mechanism preferences of one Request (upstream clients offer 1 to 4). */
export const MAX_MECHANISM_PREFERENCES = 16;
/** Parameters of one mechanism. */
export const MAX_MECHANISM_PARAMETERS = 64;
/** A mechanism parameter value (an iptables NAT template is the longest upstream sends). */
export const MAX_PARAMETER_VALUE_LENGTH = 4096;
/** Any URL (endpoint URLs, netns URLs); a unix socket path is further bounded to 107 bytes where it is served. */
export const MAX_URL_LENGTH = 2048;
/** Entries of any other list: service names of an endpoint or selector, path ids, IP context lists, matches. */
export const MAX_LIST_LENGTH = 1024;
/** An address, prefix or other short string inside the IP context. */
export const MAX_ADDRESS_LENGTH = 64;

export function checkLength(field: string, value: string, max: number): void {
  if (value.length > max) throw new InvalidArgumentError(field, value, `longer than ${max} characters (${value.length})`);
}

export function checkCount(field: string, list: readonly unknown[] | Readonly<Record<string, unknown>>, max: number): void {
  const n = Array.isArray(list) ? list.length : Object.keys(list).length;
  if (n > max) throw new InvalidArgumentError(field, Array.isArray(list) ? list : Object.keys(list), `more than ${max} entries (${n})`);
}

function checkStrings(field: string, list: readonly string[], max: number, count = MAX_LIST_LENGTH): void {
  checkCount(field, list, count);
  list.forEach((s, i) => checkLength(`${field}[${i}]`, s, max));
}

/** A string map: entry count, key and value lengths. */
export function checkLabels(field: string, labels: Readonly<Record<string, string>> | undefined, valueMax = MAX_LABEL_VALUE_LENGTH): void {
  if (!labels) return;
  checkCount(field, labels, MAX_LABELS);
  for (const [k, v] of Object.entries(labels)) {
    checkLength(`${field} key`, k, MAX_LABEL_KEY_LENGTH);
    checkLength(`${field}[${JSON.stringify(k)}]`, v, valueMax);
  }
}

function checkSegment(field: string, s: PathSegment): void {
  checkLength(`${field}.name`, s.name, MAX_NAME_LENGTH);
  checkLength(`${field}.id`, s.id, MAX_ID_LENGTH);
  checkLength(`${field}.token`, s.token, MAX_TOKEN_LENGTH);
  checkLabels(`${field}.metrics`, s.metrics);
}

function checkSegments(field: string, segments: readonly PathSegment[]): void {
  checkCount(field, segments, MAX_PATH_SEGMENTS);
  segments.forEach((s, i) => checkSegment(`${field}[${i}]`, s));
}

export function checkMechanism(field: string, m: Mechanism | undefined): void {
  if (!m) return;
  checkLength(`${field}.cls`, m.cls, MAX_NAME_LENGTH);
  checkLength(`${field}.type`, m.type, MAX_NAME_LENGTH);
  checkCount(`${field}.parameters`, m.parameters, MAX_MECHANISM_PARAMETERS);
  for (const [k, v] of Object.entries(m.parameters)) {
    checkLength(`${field}.parameters key`, k, MAX_LABEL_KEY_LENGTH);
    checkLength(`${field}.parameters[${JSON.stringify(k)}]`, v, MAX_PARAMETER_VALUE_LENGTH);
  }
}

function checkContext(field: string, c: ConnectionContext | undefined): void {
  if (!c) return;
  checkLabels(`${field}.extra_context`, c.extraContext);
  const ip = c.ipContext;
  if (ip) {
    for (const [name, list] of [
      ['src_ip_addrs', ip.srcIpAddrs],
      ['dst_ip_addrs', ip.dstIpAddrs],
      ['excluded_prefixes', ip.excludedPrefixes],
      ['extra_prefixes', ip.extraPrefixes],
    ] as const) {
      checkStrings(`${field}.ip_context.${name}`, list, MAX_ADDRESS_LENGTH);
    }
    for (const [name, list] of [
      ['src_routes', ip.srcRoutes],
      ['dst_routes', ip.dstRoutes],
      ['ip_neighbors', ip.ipNeighbors],
      ['extra_prefix_request', ip.extraPrefixRequest],
      ['policies', ip.policies],
    ] as const) {
      checkCount(`${field}.ip_context.${name}`, list, MAX_LIST_LENGTH);
    }
    ip.srcRoutes.forEach((r, i) => checkLength(`${field}.ip_context.src_routes[${i}].prefix`, r.prefix, MAX_ADDRESS_LENGTH));
    ip.dstRoutes.forEach((r, i) => checkLength(`${field}.ip_context.dst_routes[${i}].prefix`, r.prefix, MAX_ADDRESS_LENGTH));
  }
  checkCount(`${field}.dns_context.configs`, c.dnsContext?.configs ?? [], MAX_LIST_LENGTH);
}

/** Sizes of a connection (as sent in a Request or a Close). */
export function checkConnection(conn: Connection, field = 'connection'): void {
  checkLength(`${field}.id`, conn.id, MAX_ID_LENGTH);
  checkLength(`${field}.network_service`, conn.networkService, MAX_NAME_LENGTH);
  checkLength(`${field}.network_service_endpoint_name`, conn.networkServiceEndpointName, MAX_NAME_LENGTH);
  checkLength(`${field}.payload`, conn.payload, MAX_NAME_LENGTH);
  checkLabels(`${field}.labels`, conn.labels);
  checkMechanism(`${field}.mechanism`, conn.mechanism);
  checkContext(`${field}.context`, conn.context);
  if (conn.path) checkSegments(`${field}.path.path_segments`, conn.path.pathSegments);
}

/** Sizes of a NetworkService Request. */
export function checkRequest(req: NetworkServiceRequest): void {
  if (req.connection) checkConnection(req.connection);
  checkCount('mechanism_preferences', req.mechanismPreferences, MAX_MECHANISM_PREFERENCES);
  req.mechanismPreferences.forEach((m, i) => checkMechanism(`mechanism_preferences[${i}]`, m));
}

/** Sizes of a MonitorConnections scope selector. */
export function checkSelector(selector: MonitorScopeSelector): void {
  checkSegments('path_segments', selector.pathSegments);
  checkStrings('network_services', selector.networkServices, MAX_NAME_LENGTH);
}

/** Sizes of a NetworkServiceEndpoint (registered, unregistered, or a Find query's template). */
export function checkNse(nse: NetworkServiceEndpoint, prefix = ''): void {
  checkLength(`${prefix}name`, nse.name, MAX_NAME_LENGTH);
  checkLength(`${prefix}url`, nse.url, MAX_URL_LENGTH);
  checkStrings(`${prefix}network_service_names`, nse.networkServiceNames, MAX_NAME_LENGTH);
  checkCount(`${prefix}network_service_labels`, nse.networkServiceLabels, MAX_LIST_LENGTH);
  for (const [svc, l] of Object.entries(nse.networkServiceLabels)) {
    checkLength(`${prefix}network_service_labels key`, svc, MAX_NAME_LENGTH);
    checkLabels(`${prefix}network_service_labels[${JSON.stringify(svc)}].labels`, l.labels);
  }
  checkStrings(`${prefix}path_ids`, nse.pathIds, MAX_ID_LENGTH, MAX_PATH_SEGMENTS);
}

/** Sizes of a NetworkService (registered, unregistered, or a Find query's template). */
export function checkNs(ns: NetworkService, prefix = ''): void {
  checkLength(`${prefix}name`, ns.name, MAX_NAME_LENGTH);
  checkLength(`${prefix}payload`, ns.payload, MAX_NAME_LENGTH);
  checkCount(`${prefix}matches`, ns.matches, MAX_LABELS);
  ns.matches.forEach((m, i) => {
    checkLabels(`${prefix}matches[${i}].source_selector`, m.sourceSelector);
    checkLabels(`${prefix}matches[${i}].metadata.labels`, m.metadata?.labels);
    checkCount(`${prefix}matches[${i}].routes`, m.routes, MAX_LABELS);
    m.routes.forEach((r, j) => checkLabels(`${prefix}matches[${i}].routes[${j}].destination_selector`, r.destinationSelector));
  });
  checkStrings(`${prefix}path_ids`, ns.pathIds, MAX_ID_LENGTH, MAX_PATH_SEGMENTS);
}
