/**
 * The one converter between registry messages and the NetworkService / NetworkServiceEndpoint custom
 * resources (`apiVersion: networkservicemesh.io/v1`), byte-compatible with upstream sdk-k8s and
 * `deployments-k8s`: `spec` is the registry message as Go `encoding/json` writes it (proto field names in
 * snake_case, empty fields left out, timestamps as `{seconds, nanos}`), and an empty `spec.name` means
 * `metadata.name`, so a hand-written `netsvc.yaml` needs only `spec.payload`.
 *
 * Two reading modes, one set of field readers:
 * - `strict` (user input: `nsm apply`, `parseCustomResources`): an unknown field (with a hint when it is
 *   the camelCase spelling of a known one), a wrong type, a missing or wrong apiVersion or kind is an
 *   InvalidArgumentError naming the document and the field and carrying the value
 *   (`document 2: spec.matches[0].routes`).
 * - `lenient` (objects read back from the API server: the Kubernetes store): unknown fields are ignored,
 *   as Go's json.Unmarshal does, camelCase JSON names (protojson) are accepted beside snake_case, and
 *   apiVersion/kind may be missing; a wrong type is still an InvalidArgumentError naming the field.
 *
 * Writing is the same for both: `nsToSpec`/`nseToSpec`, `toCustomResource` (YAML output), and
 * `nsToResource`/`nseToResource` (API objects; the name must be a Kubernetes object name). Pure
 * functions, no I/O. Mirrors the CRD types of upstream `sdk-k8s:pkg/tools/k8s/apis/networkservicemesh.io/v1`.
 */
import { parseAllDocuments, stringify } from 'yaml';
import type { Destination, Match, NetworkService, NetworkServiceEndpoint, NetworkServiceLabels } from '../api/gen/registry.js';
import { InvalidArgumentError } from '../core/errors.js';

export const GROUP = 'networkservicemesh.io';
export const VERSION = 'v1';
export const CR_API_VERSION = `${GROUP}/${VERSION}`;
export const KIND_NETWORK_SERVICE = 'NetworkService';
export const KIND_NETWORK_SERVICE_ENDPOINT = 'NetworkServiceEndpoint';

/** How strictly a custom resource is read (see the module comment). */
export type CrMode = 'strict' | 'lenient';

/** A CRD's names as the Kubernetes API serves them. */
export interface ResourceKind {
  readonly kind: typeof KIND_NETWORK_SERVICE | typeof KIND_NETWORK_SERVICE_ENDPOINT;
  readonly plural: 'networkservices' | 'networkserviceendpoints';
  readonly singular: string;
  readonly shortNames: readonly string[];
}

export const NS_KIND: ResourceKind = Object.freeze({
  kind: KIND_NETWORK_SERVICE,
  plural: 'networkservices',
  singular: 'networkservice',
  shortNames: Object.freeze(['netsvc', 'netsvcs']),
});
export const NSE_KIND: ResourceKind = Object.freeze({
  kind: KIND_NETWORK_SERVICE_ENDPOINT,
  plural: 'networkserviceendpoints',
  singular: 'networkserviceendpoint',
  shortNames: Object.freeze(['nse', 'nses']),
});

export interface CrMeta {
  readonly name: string;
  readonly namespace?: string;
}

/** A custom resource read into its registry message. */
export type CustomResource =
  | { readonly kind: typeof KIND_NETWORK_SERVICE; readonly metadata: CrMeta; readonly item: NetworkService }
  | { readonly kind: typeof KIND_NETWORK_SERVICE_ENDPOINT; readonly metadata: CrMeta; readonly item: NetworkServiceEndpoint };

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

/** A custom resource as a Kubernetes API object. */
export interface ResourceObject {
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

// ---- field readers -------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

const bad = (field: string, value: unknown, reason: string): never => {
  throw new InvalidArgumentError(field, value, reason);
};

const absent = (v: unknown): v is undefined | null => v === undefined || v === null;

function obj(v: unknown, field: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(field, v, 'expected an object');
  return v as Obj;
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Strict: rejects keys outside `known` (a camelCase spelling of a known key gets a hint). Lenient: no check. */
function onlyKeys(mode: CrMode, o: Obj, known: readonly string[], field: string): void {
  if (mode === 'lenient') return;
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const hint = known.includes(snake(k)) ? `; spec fields are snake_case: use "${snake(k)}"` : `; known fields: ${known.join(', ')}`;
    bad(`${field}.${k}`, o[k], `unknown field${hint}`);
  }
}

/** `o[key]` (null as undefined); lenient also finds the camelCase JSON name. */
function get(mode: CrMode, o: Obj, key: string): unknown {
  if (!absent(o[key])) return o[key];
  if (mode === 'strict') return undefined;
  const alt = camel(key);
  return alt === key || absent(o[alt]) ? undefined : o[alt];
}

function str(v: unknown, field: string): string {
  if (absent(v)) return '';
  if (typeof v !== 'string') bad(field, v, 'expected a string');
  return v as string;
}

function bool(v: unknown, field: string): boolean {
  if (absent(v)) return false;
  if (typeof v !== 'boolean') bad(field, v, 'expected true or false');
  return v as boolean;
}

function uint32(v: unknown, field: string): number {
  if (absent(v)) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) bad(field, v, 'expected an unsigned 32-bit integer');
  return v as number;
}

function strList(v: unknown, field: string): string[] {
  if (absent(v)) return [];
  if (!Array.isArray(v)) return bad(field, v, 'expected a list of strings');
  return (v as unknown[]).map((x, i) => {
    if (typeof x !== 'string') bad(`${field}[${i}]`, x, 'expected a string');
    return x as string;
  });
}

function strMap(v: unknown, field: string): Record<string, string> {
  if (absent(v)) return {};
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(obj(v, field))) {
    if (typeof x !== 'string') bad(`${field}.${k}`, x, 'expected a string (quote numbers and booleans)');
    out[k] = x as string;
  }
  return out;
}

function list<T>(v: unknown, field: string, each: (x: unknown, f: string) => T): T[] {
  if (absent(v)) return [];
  if (!Array.isArray(v)) return bad(field, v, 'expected a list');
  return (v as unknown[]).map((x, i) => each(x, `${field}[${i}]`));
}

/** An integer, also as a decimal string (protojson writes int64 as a string). */
function int(v: unknown, field: string): number {
  if (absent(v)) return 0;
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) bad(field, v, 'expected an integer');
  return n as number;
}

// ---- timestamps ----------------------------------------------------------------------------------------

/** `{seconds, nanos}` (Go encoding/json of a protobuf Timestamp) or an RFC 3339 string (protojson). */
export function timestampFromSpec(v: unknown, field: string, mode: CrMode = 'strict'): Date | undefined {
  if (absent(v)) return undefined;
  if (typeof v === 'string') {
    const ms = Date.parse(v);
    if (Number.isNaN(ms)) bad(field, v, 'expected {seconds, nanos} or an RFC 3339 time');
    return new Date(ms);
  }
  const o = obj(v, field);
  onlyKeys(mode, o, ['seconds', 'nanos'], field);
  const seconds = int(o.seconds, `${field}.seconds`);
  const nanos = int(o.nanos, `${field}.nanos`);
  if (nanos < 0 || nanos > 999_999_999) bad(`${field}.nanos`, o.nanos, 'expected 0..999999999');
  return new Date(seconds * 1000 + Math.floor(nanos / 1e6));
}

/** Go encoding/json of a Timestamp: zero seconds and zero nanos are left out (`omitempty`). */
export function timestampToSpec(d: Date): JsonTimestamp {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1e6;
  const out: JsonTimestamp = {};
  if (seconds !== 0) out.seconds = seconds;
  if (nanos !== 0) out.nanos = nanos;
  return out;
}

// ---- NetworkService ------------------------------------------------------------------------------------

const NS_KEYS = ['name', 'payload', 'matches', 'path_ids'] as const;
const MATCH_KEYS = ['source_selector', 'routes', 'fallthrough', 'metadata'] as const;
const ROUTE_KEYS = ['destination_selector', 'weight'] as const;

function routeFromSpec(mode: CrMode, v: unknown, field: string): Destination {
  const o = obj(v, field);
  onlyKeys(mode, o, ROUTE_KEYS, field);
  return {
    destinationSelector: strMap(get(mode, o, 'destination_selector'), `${field}.destination_selector`),
    weight: uint32(get(mode, o, 'weight'), `${field}.weight`),
  };
}

function matchFromSpec(mode: CrMode, v: unknown, field: string): Match {
  const o = obj(v, field);
  onlyKeys(mode, o, MATCH_KEYS, field);
  let metadata: Match['metadata'];
  const md = get(mode, o, 'metadata');
  if (!absent(md)) {
    const m = obj(md, `${field}.metadata`);
    onlyKeys(mode, m, ['labels'], `${field}.metadata`);
    metadata = { labels: strMap(get(mode, m, 'labels'), `${field}.metadata.labels`) };
  }
  return {
    sourceSelector: strMap(get(mode, o, 'source_selector'), `${field}.source_selector`),
    routes: list(get(mode, o, 'routes'), `${field}.routes`, (x, f) => routeFromSpec(mode, x, f)),
    fallthrough: bool(get(mode, o, 'fallthrough'), `${field}.fallthrough`),
    metadata,
  };
}

/** snake_case spec → NetworkService. `field` prefixes error field names. */
export function nsFromSpec(spec: unknown, field = 'spec', mode: CrMode = 'strict'): NetworkService {
  const o = absent(spec) ? {} : obj(spec, field);
  onlyKeys(mode, o, NS_KEYS, field);
  return {
    name: str(get(mode, o, 'name'), `${field}.name`),
    payload: str(get(mode, o, 'payload'), `${field}.payload`),
    matches: list(get(mode, o, 'matches'), `${field}.matches`, (x, f) => matchFromSpec(mode, x, f)),
    pathIds: strList(get(mode, o, 'path_ids'), `${field}.path_ids`),
  };
}

const nonEmpty = (m: Record<string, string> | undefined): m is Record<string, string> => m !== undefined && Object.keys(m).length > 0;

function matchToSpec(m: Match): Obj {
  const out: Obj = {};
  if (nonEmpty(m.sourceSelector)) out.source_selector = { ...m.sourceSelector };
  if (m.routes.length > 0) {
    out.routes = m.routes.map((r) => {
      const ro: Obj = {};
      if (nonEmpty(r.destinationSelector)) ro.destination_selector = { ...r.destinationSelector };
      if (r.weight) ro.weight = r.weight;
      return ro;
    });
  }
  if (m.fallthrough) out.fallthrough = true;
  if (m.metadata) out.metadata = nonEmpty(m.metadata.labels) ? { labels: { ...m.metadata.labels } } : {};
  return out;
}

/** NetworkService → snake_case spec (empty fields omitted, as Go `omitempty`). */
export function nsToSpec(ns: NetworkService): Obj {
  const out: Obj = {};
  if (ns.name) out.name = ns.name;
  if (ns.payload) out.payload = ns.payload;
  if (ns.matches.length > 0) out.matches = ns.matches.map(matchToSpec);
  if (ns.pathIds.length > 0) out.path_ids = [...ns.pathIds];
  return out;
}

// ---- NetworkServiceEndpoint ----------------------------------------------------------------------------

const NSE_KEYS = ['name', 'network_service_names', 'network_service_labels', 'url', 'expiration_time', 'initial_registration_time', 'path_ids'] as const;

function labelsFromSpec(mode: CrMode, v: unknown, f: string): Record<string, NetworkServiceLabels> {
  const labels: Record<string, NetworkServiceLabels> = {};
  if (absent(v)) return labels;
  for (const [svc, l] of Object.entries(obj(v, f))) {
    const lo = l === null ? {} : obj(l, `${f}.${svc}`);
    onlyKeys(mode, lo, ['labels'], `${f}.${svc}`);
    labels[svc] = { labels: strMap(get(mode, lo, 'labels'), `${f}.${svc}.labels`) };
  }
  return labels;
}

/** snake_case spec → NetworkServiceEndpoint. */
export function nseFromSpec(spec: unknown, field = 'spec', mode: CrMode = 'strict'): NetworkServiceEndpoint {
  const o = absent(spec) ? {} : obj(spec, field);
  onlyKeys(mode, o, NSE_KEYS, field);
  return {
    name: str(get(mode, o, 'name'), `${field}.name`),
    networkServiceNames: strList(get(mode, o, 'network_service_names'), `${field}.network_service_names`),
    networkServiceLabels: labelsFromSpec(mode, get(mode, o, 'network_service_labels'), `${field}.network_service_labels`),
    url: str(get(mode, o, 'url'), `${field}.url`),
    expirationTime: timestampFromSpec(get(mode, o, 'expiration_time'), `${field}.expiration_time`, mode),
    initialRegistrationTime: timestampFromSpec(get(mode, o, 'initial_registration_time'), `${field}.initial_registration_time`, mode),
    pathIds: strList(get(mode, o, 'path_ids'), `${field}.path_ids`),
  };
}

/** NetworkServiceEndpoint → snake_case spec (empty fields omitted). */
export function nseToSpec(nse: NetworkServiceEndpoint): Obj {
  const out: Obj = {};
  if (nse.name) out.name = nse.name;
  if (nse.networkServiceNames.length > 0) out.network_service_names = [...nse.networkServiceNames];
  const svcs = Object.entries(nse.networkServiceLabels);
  if (svcs.length > 0) {
    out.network_service_labels = Object.fromEntries(svcs.map(([k, v]) => [k, nonEmpty(v?.labels) ? { labels: { ...v.labels } } : {}]));
  }
  if (nse.url) out.url = nse.url;
  if (nse.expirationTime) out.expiration_time = timestampToSpec(nse.expirationTime);
  if (nse.initialRegistrationTime) out.initial_registration_time = timestampToSpec(nse.initialRegistrationTime);
  if (nse.pathIds.length > 0) out.path_ids = [...nse.pathIds];
  return out;
}

// ---- whole resources -----------------------------------------------------------------------------------

const TOP_KEYS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'] as const;

/**
 * Reads one custom resource object. `where` prefixes every error field (`document 2: spec.url`; empty:
 * `spec.url`). With `expected`, only that kind is accepted (and, lenient, a missing kind means it).
 */
export function readCustomResource(doc: unknown, where: string, mode: CrMode, expected?: ResourceKind): CustomResource {
  const at = (f: string) => (where ? `${where}: ${f}` : f);
  const o = obj(doc, where || (expected?.kind ?? 'resource'));
  onlyKeys(mode, o, TOP_KEYS, where);
  if (o.apiVersion !== CR_API_VERSION && (mode === 'strict' || o.apiVersion !== undefined)) bad(at('apiVersion'), o.apiVersion, `expected ${CR_API_VERSION}`);
  const kinds = expected ? [expected.kind] : [KIND_NETWORK_SERVICE, KIND_NETWORK_SERVICE_ENDPOINT];
  const kind = o.kind === undefined && mode === 'lenient' ? expected?.kind : o.kind;
  if (!kinds.includes(kind as ResourceKind['kind'])) bad(at('kind'), o.kind, `expected ${kinds.join(' or ')}`);
  const meta = absent(o.metadata) ? {} : obj(o.metadata, at('metadata'));
  const metaName = str(meta.name, at('metadata.name'));
  const namespace = meta.namespace === undefined ? undefined : str(meta.namespace, at('metadata.namespace')) || undefined;
  const item = kind === KIND_NETWORK_SERVICE ? nsFromSpec(o.spec, at('spec'), mode) : nseFromSpec(o.spec, at('spec'), mode);
  item.name ||= metaName;
  if (!item.name) bad(at('metadata.name'), meta.name, 'a name is required (metadata.name or spec.name)');
  return { kind, metadata: { name: metaName || item.name, namespace }, item } as CustomResource;
}

/** One parsed YAML/JSON document → a custom resource, strictly. `where` prefixes every error field (e.g. `document 2`). */
export function customResourceFromObject(doc: unknown, where: string): CustomResource {
  return readCustomResource(doc, where, 'strict');
}

/** A NetworkService from its API object (lenient unless told otherwise). */
export function nsFromResource(cr: unknown, mode: CrMode = 'lenient'): NetworkService {
  return readCustomResource(cr, '', mode, NS_KIND).item as NetworkService;
}

/** A NetworkServiceEndpoint from its API object (lenient unless told otherwise). */
export function nseFromResource(cr: unknown, mode: CrMode = 'lenient'): NetworkServiceEndpoint {
  return readCustomResource(cr, '', mode, NSE_KIND).item as NetworkServiceEndpoint;
}

/**
 * Parses one or more YAML documents strictly (`---` separated; empty documents are skipped and not
 * counted, so `document 2` is the second resource in the text). `source` (a file name) prefixes error
 * fields. Throws InvalidArgumentError on the first bad document.
 */
export function parseCustomResources(text: string, source?: string): CustomResource[] {
  const prefix = source ? `${source} ` : '';
  const out: CustomResource[] = [];
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) return out; // an empty stream
  let n = 0;
  for (const doc of docs) {
    if (doc.errors.length === 0 && (doc.contents === null || doc.toJS() == null)) continue;
    const where = `${prefix}document ${++n}`;
    if (doc.errors.length > 0) bad(where, doc.errors[0].message.split('\n')[0], 'not valid YAML');
    out.push(customResourceFromObject(doc.toJS(), where));
  }
  return out;
}

function resourceObject(kind: ResourceKind['kind'], spec: Obj, name: string, namespace?: string, resourceVersion?: string): ResourceObject {
  const metadata: ObjectMeta = { name };
  if (namespace) metadata.namespace = namespace;
  if (resourceVersion !== undefined) metadata.resourceVersion = resourceVersion;
  return { apiVersion: CR_API_VERSION, kind, metadata, spec };
}

function checkedName(kind: ResourceKind, name: string): string {
  if (!isValidObjectName(name)) {
    bad(`${kind.kind}.name`, name, 'must be a valid Kubernetes object name (lower-case DNS-1123 subdomain, at most 253 characters)');
  }
  return name;
}

/** The API object of a NetworkService; its name must be a Kubernetes object name. */
export function nsToResource(ns: NetworkService, namespace?: string, resourceVersion?: string): ResourceObject {
  return resourceObject(KIND_NETWORK_SERVICE, nsToSpec(ns), checkedName(NS_KIND, ns.name), namespace, resourceVersion);
}

/** The API object of a NetworkServiceEndpoint; its name must be a Kubernetes object name. */
export function nseToResource(nse: NetworkServiceEndpoint, namespace?: string, resourceVersion?: string): ResourceObject {
  return resourceObject(KIND_NETWORK_SERVICE_ENDPOINT, nseToSpec(nse), checkedName(NSE_KIND, nse.name), namespace, resourceVersion);
}

export type CustomResourceToWrite =
  | { kind: typeof KIND_NETWORK_SERVICE; item: NetworkService; namespace?: string }
  | { kind: typeof KIND_NETWORK_SERVICE_ENDPOINT; item: NetworkServiceEndpoint; namespace?: string };

/** A custom-resource object for `item` (the name goes to metadata.name and stays in spec.name; not checked). */
export function toCustomResource(cr: CustomResourceToWrite): ResourceObject {
  const spec = cr.kind === KIND_NETWORK_SERVICE ? nsToSpec(cr.item) : nseToSpec(cr.item);
  return resourceObject(cr.kind, spec, cr.item.name, cr.namespace);
}

/** YAML text of several custom resources, `---` separated. */
export function stringifyCustomResources(list: readonly CustomResourceToWrite[]): string {
  return list.map((cr) => `---\n${stringify(toCustomResource(cr))}`).join('');
}
