/**
 * Converters between registry messages and NetworkService / NetworkServiceEndpoint custom resources
 * (group `networkservicemesh.io`, version `v1`), byte-compatible with upstream sdk-k8s: the CR `spec` is
 * the protobuf message as Go `encoding/json` writes it, i.e. the proto field names in snake_case with
 * empty fields left out, and timestamps as `{seconds, nanos}`. An empty `spec.name` means
 * `metadata.name`, so a hand-written `netsvc.yaml` needs only `spec.payload`.
 *
 * Reading is strict on types (a wrong type is an InvalidArgumentError naming the field and the value)
 * and lenient on names (camelCase JSON names, as protojson writes them, are accepted too; unknown
 * fields are ignored, as Go's json.Unmarshal does).
 */
import type { Destination, Match, NetworkService, NetworkServiceEndpoint, NetworkServiceLabels } from '../../api/gen/registry.js';
import { InvalidArgumentError } from '../../core/errors.js';

export const GROUP = 'networkservicemesh.io';
export const VERSION = 'v1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface ResourceKind {
  readonly kind: 'NetworkService' | 'NetworkServiceEndpoint';
  readonly plural: 'networkservices' | 'networkserviceendpoints';
  readonly singular: string;
  readonly shortNames: readonly string[];
}

export const NS_KIND: ResourceKind = Object.freeze({ kind: 'NetworkService', plural: 'networkservices', singular: 'networkservice', shortNames: ['netsvc', 'netsvcs'] });
export const NSE_KIND: ResourceKind = Object.freeze({
  kind: 'NetworkServiceEndpoint',
  plural: 'networkserviceendpoints',
  singular: 'networkserviceendpoint',
  shortNames: ['nse', 'nses'],
});

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface CustomResource {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec?: Record<string, unknown>;
}

/** Go-JSON timestamp (`google.protobuf.Timestamp` through encoding/json). */
export interface JsonTimestamp {
  seconds?: number;
  nanos?: number;
}

/** A Kubernetes object name: a DNS-1123 subdomain (lower case alphanumerics, `-`, `.`; ≤ 253). */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isValidObjectName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && DNS1123_SUBDOMAIN.test(name);
}

// ---- writing ----------------------------------------------------------------------------------------

export function timestampToJson(d: Date): JsonTimestamp {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1_000_000;
  const out: JsonTimestamp = {};
  if (seconds !== 0) out.seconds = seconds;
  if (nanos !== 0) out.nanos = nanos;
  return out;
}

function nonEmptyMap(m: Record<string, string> | undefined): Record<string, string> | undefined {
  return m && Object.keys(m).length > 0 ? { ...m } : undefined;
}

function destinationToJson(d: Destination): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const sel = nonEmptyMap(d.destinationSelector);
  if (sel) out.destination_selector = sel;
  if (d.weight) out.weight = d.weight;
  return out;
}

function matchToJson(m: Match): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const sel = nonEmptyMap(m.sourceSelector);
  if (sel) out.source_selector = sel;
  if (m.routes.length > 0) out.routes = m.routes.map(destinationToJson);
  if (m.fallthrough) out.fallthrough = true;
  if (m.metadata) {
    const labels = nonEmptyMap(m.metadata.labels);
    out.metadata = labels ? { labels } : {};
  }
  return out;
}

/** The CR spec of a NetworkService (upstream snake_case JSON). */
export function nsToSpec(ns: NetworkService): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (ns.name) out.name = ns.name;
  if (ns.payload) out.payload = ns.payload;
  if (ns.matches.length > 0) out.matches = ns.matches.map(matchToJson);
  if (ns.pathIds.length > 0) out.path_ids = [...ns.pathIds];
  return out;
}

/** The CR spec of a NetworkServiceEndpoint (upstream snake_case JSON). */
export function nseToSpec(nse: NetworkServiceEndpoint): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (nse.name) out.name = nse.name;
  if (nse.networkServiceNames.length > 0) out.network_service_names = [...nse.networkServiceNames];
  const labelEntries = Object.entries(nse.networkServiceLabels);
  if (labelEntries.length > 0) {
    out.network_service_labels = Object.fromEntries(
      labelEntries.map(([svc, l]) => {
        const labels = nonEmptyMap(l?.labels);
        return [svc, labels ? { labels } : {}];
      }),
    );
  }
  if (nse.url) out.url = nse.url;
  if (nse.expirationTime) out.expiration_time = timestampToJson(nse.expirationTime);
  if (nse.initialRegistrationTime) out.initial_registration_time = timestampToJson(nse.initialRegistrationTime);
  if (nse.pathIds.length > 0) out.path_ids = [...nse.pathIds];
  return out;
}

function resource(kind: ResourceKind, name: string, namespace: string | undefined, spec: Record<string, unknown>, resourceVersion?: string): CustomResource {
  if (!isValidObjectName(name)) {
    throw new InvalidArgumentError(`${kind.kind}.name`, name, 'must be a valid Kubernetes object name (lower-case DNS-1123 subdomain, at most 253 characters)');
  }
  const metadata: ObjectMeta = { name };
  if (namespace !== undefined) metadata.namespace = namespace;
  if (resourceVersion !== undefined) metadata.resourceVersion = resourceVersion;
  return { apiVersion: API_VERSION, kind: kind.kind, metadata, spec };
}

export function nsToResource(ns: NetworkService, namespace?: string, resourceVersion?: string): CustomResource {
  return resource(NS_KIND, ns.name, namespace, nsToSpec(ns), resourceVersion);
}

export function nseToResource(nse: NetworkServiceEndpoint, namespace?: string, resourceVersion?: string): CustomResource {
  return resource(NSE_KIND, nse.name, namespace, nseToSpec(nse), resourceVersion);
}

// ---- reading ----------------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Field value by snake_case name, falling back to the camelCase JSON name. */
function field(obj: Json, snake: string): unknown {
  if (obj[snake] !== undefined && obj[snake] !== null) return obj[snake];
  const camel = snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return camel === snake ? undefined : (obj[camel] ?? undefined);
}

function readString(obj: Json, key: string, path: string): string {
  const v = field(obj, key);
  if (v === undefined) return '';
  if (typeof v !== 'string') throw new InvalidArgumentError(`${path}.${key}`, v, 'must be a string');
  return v;
}

function readStringList(obj: Json, key: string, path: string): string[] {
  const v = field(obj, key);
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidArgumentError(`${path}.${key}`, v, 'must be a list of strings');
  return [...(v as string[])];
}

function readStringMap(obj: Json, key: string, path: string): Record<string, string> {
  const v = field(obj, key);
  if (v === undefined) return {};
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new InvalidArgumentError(`${path}.${key}`, v, 'must be a map of string to string');
  }
  return { ...(v as Record<string, string>) };
}

function readObject(obj: Json, key: string, path: string): Json | undefined {
  const v = field(obj, key);
  if (v === undefined) return undefined;
  if (!isObject(v)) throw new InvalidArgumentError(`${path}.${key}`, v, 'must be an object');
  return v;
}

function readList(obj: Json, key: string, path: string): Json[] {
  const v = field(obj, key);
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new InvalidArgumentError(`${path}.${key}`, v, 'must be a list');
  return v.map((x, i) => {
    if (!isObject(x)) throw new InvalidArgumentError(`${path}.${key}[${i}]`, x, 'must be an object');
    return x;
  });
}

/** Reads `{seconds, nanos}` (Go JSON) or an RFC 3339 string (protojson). */
export function timestampFromJson(v: unknown, path: string): Date | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') {
    const ms = Date.parse(v);
    if (Number.isNaN(ms)) throw new InvalidArgumentError(path, v, 'must be {seconds, nanos} or an RFC 3339 time');
    return new Date(ms);
  }
  if (!isObject(v)) throw new InvalidArgumentError(path, v, 'must be {seconds, nanos}');
  const seconds = v.seconds === undefined ? 0 : typeof v.seconds === 'string' && /^-?\d+$/.test(v.seconds) ? Number(v.seconds) : v.seconds;
  const nanos = v.nanos ?? 0;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds)) throw new InvalidArgumentError(`${path}.seconds`, v.seconds, 'must be an integer');
  if (typeof nanos !== 'number' || !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) {
    throw new InvalidArgumentError(`${path}.nanos`, v.nanos, 'must be an integer in [0, 999999999]');
  }
  return new Date(seconds * 1000 + Math.floor(nanos / 1_000_000));
}

function readDestination(d: Json, path: string): Destination {
  const w = field(d, 'weight') ?? 0;
  if (typeof w !== 'number' || !Number.isInteger(w) || w < 0 || w > 0xffffffff) throw new InvalidArgumentError(`${path}.weight`, w, 'must be a uint32');
  return { destinationSelector: readStringMap(d, 'destination_selector', path), weight: w };
}

function readMatch(m: Json, path: string): Match {
  const ft = field(m, 'fallthrough') ?? false;
  if (typeof ft !== 'boolean') throw new InvalidArgumentError(`${path}.fallthrough`, ft, 'must be a boolean');
  const md = readObject(m, 'metadata', path);
  return {
    sourceSelector: readStringMap(m, 'source_selector', path),
    routes: readList(m, 'routes', path).map((d, i) => readDestination(d, `${path}.routes[${i}]`)),
    fallthrough: ft,
    metadata: md === undefined ? undefined : { labels: readStringMap(md, 'labels', `${path}.metadata`) },
  };
}

function checkResource(cr: unknown, kind: ResourceKind): { name: string; spec: Json } {
  if (!isObject(cr)) throw new InvalidArgumentError(kind.kind, cr, 'must be an object');
  if (cr.apiVersion !== undefined && cr.apiVersion !== API_VERSION) throw new InvalidArgumentError('apiVersion', cr.apiVersion, `must be ${API_VERSION}`);
  if (cr.kind !== undefined && cr.kind !== kind.kind) throw new InvalidArgumentError('kind', cr.kind, `must be ${kind.kind}`);
  const metadata = cr.metadata;
  if (!isObject(metadata)) throw new InvalidArgumentError('metadata', metadata, 'must be an object');
  const metaName = metadata.name ?? '';
  if (typeof metaName !== 'string') throw new InvalidArgumentError('metadata.name', metaName, 'must be a string');
  const spec = cr.spec ?? {};
  if (!isObject(spec)) throw new InvalidArgumentError('spec', spec, 'must be an object');
  const specName = readString(spec, 'name', 'spec');
  const name = specName || metaName;
  if (!name) throw new InvalidArgumentError('metadata.name', metaName, 'is required when spec.name is empty');
  return { name, spec };
}

/** A NetworkService from its custom resource. */
export function nsFromResource(cr: unknown): NetworkService {
  const { name, spec } = checkResource(cr, NS_KIND);
  return {
    name,
    payload: readString(spec, 'payload', 'spec'),
    matches: readList(spec, 'matches', 'spec').map((m, i) => readMatch(m, `spec.matches[${i}]`)),
    pathIds: readStringList(spec, 'path_ids', 'spec'),
  };
}

/** A NetworkServiceEndpoint from its custom resource. */
export function nseFromResource(cr: unknown): NetworkServiceEndpoint {
  const { name, spec } = checkResource(cr, NSE_KIND);
  const labels: Record<string, NetworkServiceLabels> = {};
  const rawLabels = readObject(spec, 'network_service_labels', 'spec') ?? {};
  for (const [svc, l] of Object.entries(rawLabels)) {
    const path = `spec.network_service_labels.${svc}`;
    if (l === null) {
      labels[svc] = { labels: {} };
      continue;
    }
    if (!isObject(l)) throw new InvalidArgumentError(path, l, 'must be an object {labels: {...}}');
    labels[svc] = { labels: readStringMap(l, 'labels', path) };
  }
  return {
    name,
    networkServiceNames: readStringList(spec, 'network_service_names', 'spec'),
    networkServiceLabels: labels,
    url: readString(spec, 'url', 'spec'),
    expirationTime: timestampFromJson(field(spec, 'expiration_time'), 'spec.expiration_time'),
    initialRegistrationTime: timestampFromJson(field(spec, 'initial_registration_time'), 'spec.initial_registration_time'),
    pathIds: readStringList(spec, 'path_ids', 'spec'),
  };
}
