/**
 * NetworkService / NetworkServiceEndpoint custom resources (`apiVersion: networkservicemesh.io/v1`), as
 * upstream `deployments-k8s` writes them and `kubectl apply` takes them: `spec` is the registry message in
 * upstream's snake_case JSON (Go `encoding/json` of the protobuf structs, timestamps as `{seconds, nanos}`),
 * and the name comes from `metadata.name` when `spec.name` is empty.
 *
 * Explicit converters both ways (spec ↔ ts-proto message), strict: an unknown field, a wrong type, a
 * wrong apiVersion or kind is an `InvalidArgumentError` naming the document and the field
 * (`document 2: spec.matches[0].routes`). Used by `nsm apply` and the Kubernetes-backed store.
 */
import { parseAllDocuments, stringify } from 'yaml';
import type { Destination, Match, NetworkService, NetworkServiceEndpoint, NetworkServiceLabels } from '../api/gen/registry.js';
import { InvalidArgumentError } from '../core/errors.js';

export const CR_API_VERSION = 'networkservicemesh.io/v1';
export const KIND_NETWORK_SERVICE = 'NetworkService';
export const KIND_NETWORK_SERVICE_ENDPOINT = 'NetworkServiceEndpoint';

export interface CrMeta {
  readonly name: string;
  readonly namespace?: string;
}

export type CustomResource =
  | { readonly kind: typeof KIND_NETWORK_SERVICE; readonly metadata: CrMeta; readonly item: NetworkService }
  | { readonly kind: typeof KIND_NETWORK_SERVICE_ENDPOINT; readonly metadata: CrMeta; readonly item: NetworkServiceEndpoint };

// ---- field readers -------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

const bad = (field: string, value: unknown, reason: string): never => {
  throw new InvalidArgumentError(field, value, reason);
};

function obj(v: unknown, field: string): Obj {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) bad(field, v, 'expected an object');
  return v as Obj;
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Rejects keys outside `known`; a camelCase spelling of a known key gets a hint. */
function onlyKeys(o: Obj, known: readonly string[], field: string): void {
  for (const k of Object.keys(o)) {
    if (known.includes(k)) continue;
    const hint = known.includes(snake(k)) ? `; spec fields are snake_case: use "${snake(k)}"` : `; known fields: ${known.join(', ')}`;
    bad(`${field}.${k}`, o[k], `unknown field${hint}`);
  }
}

function str(v: unknown, field: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') bad(field, v, 'expected a string');
  return v as string;
}

function bool(v: unknown, field: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') bad(field, v, 'expected true or false');
  return v as boolean;
}

function uint32(v: unknown, field: string): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) bad(field, v, 'expected an unsigned 32-bit integer');
  return v as number;
}

function strList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return bad(field, v, 'expected a list of strings');
  return (v as unknown[]).map((x, i) => {
    if (typeof x !== 'string') bad(`${field}[${i}]`, x, 'expected a string');
    return x as string;
  });
}

function strMap(v: unknown, field: string): Record<string, string> {
  if (v === undefined || v === null) return {};
  const o = obj(v, field);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(o)) {
    if (typeof x !== 'string') bad(`${field}.${k}`, x, 'expected a string (quote numbers and booleans)');
    out[k] = x as string;
  }
  return out;
}

function list<T>(v: unknown, field: string, each: (x: unknown, f: string) => T): T[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return bad(field, v, 'expected a list');
  return (v as unknown[]).map((x, i) => each(x, `${field}[${i}]`));
}

function int(v: unknown, field: string): number {
  if (v === undefined || v === null) return 0;
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) bad(field, v, 'expected an integer');
  return n as number;
}

/** `{seconds, nanos}` (Go encoding/json of a protobuf Timestamp) or an RFC 3339 string. */
export function timestampFromSpec(v: unknown, field: string): Date | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') {
    const ms = Date.parse(v);
    if (Number.isNaN(ms)) bad(field, v, 'expected {seconds, nanos} or an RFC 3339 time');
    return new Date(ms);
  }
  const o = obj(v, field);
  onlyKeys(o, ['seconds', 'nanos'], field);
  const seconds = int(o.seconds, `${field}.seconds`);
  const nanos = int(o.nanos, `${field}.nanos`);
  if (nanos < 0 || nanos > 999_999_999) bad(`${field}.nanos`, o.nanos, 'expected 0..999999999');
  return new Date(seconds * 1000 + Math.floor(nanos / 1e6));
}

export function timestampToSpec(d: Date): { seconds: number; nanos?: number } {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  const nanos = (ms - seconds * 1000) * 1e6;
  return nanos === 0 ? { seconds } : { seconds, nanos };
}

// ---- NetworkService ------------------------------------------------------------------------------------

const NS_KEYS = ['name', 'payload', 'matches', 'path_ids'] as const;
const MATCH_KEYS = ['source_selector', 'routes', 'fallthrough', 'metadata'] as const;
const ROUTE_KEYS = ['destination_selector', 'weight'] as const;

function routeFromSpec(v: unknown, field: string): Destination {
  const o = obj(v, field);
  onlyKeys(o, ROUTE_KEYS, field);
  return { destinationSelector: strMap(o.destination_selector, `${field}.destination_selector`), weight: uint32(o.weight, `${field}.weight`) };
}

function matchFromSpec(v: unknown, field: string): Match {
  const o = obj(v, field);
  onlyKeys(o, MATCH_KEYS, field);
  let metadata: Match['metadata'];
  if (o.metadata !== undefined && o.metadata !== null) {
    const m = obj(o.metadata, `${field}.metadata`);
    onlyKeys(m, ['labels'], `${field}.metadata`);
    metadata = { labels: strMap(m.labels, `${field}.metadata.labels`) };
  }
  return {
    sourceSelector: strMap(o.source_selector, `${field}.source_selector`),
    routes: list(o.routes, `${field}.routes`, routeFromSpec),
    fallthrough: bool(o.fallthrough, `${field}.fallthrough`),
    metadata,
  };
}

/** snake_case spec → NetworkService. `field` prefixes error field names. */
export function nsFromSpec(spec: unknown, field = 'spec'): NetworkService {
  const o = spec === undefined || spec === null ? {} : obj(spec, field);
  onlyKeys(o, NS_KEYS, field);
  return {
    name: str(o.name, `${field}.name`),
    payload: str(o.payload, `${field}.payload`),
    matches: list(o.matches, `${field}.matches`, matchFromSpec),
    pathIds: strList(o.path_ids, `${field}.path_ids`),
  };
}

const nonEmpty = (m: Record<string, string>) => Object.keys(m).length > 0;

/** NetworkService → snake_case spec (empty fields omitted, as Go `omitempty`). */
export function nsToSpec(ns: NetworkService): Obj {
  const out: Obj = {};
  if (ns.name) out.name = ns.name;
  if (ns.payload) out.payload = ns.payload;
  if (ns.matches.length > 0) {
    out.matches = ns.matches.map((m) => {
      const mo: Obj = {};
      if (nonEmpty(m.sourceSelector)) mo.source_selector = { ...m.sourceSelector };
      if (m.routes.length > 0) {
        mo.routes = m.routes.map((r) => {
          const ro: Obj = {};
          if (nonEmpty(r.destinationSelector)) ro.destination_selector = { ...r.destinationSelector };
          if (r.weight) ro.weight = r.weight;
          return ro;
        });
      }
      if (m.fallthrough) mo.fallthrough = true;
      if (m.metadata) mo.metadata = nonEmpty(m.metadata.labels) ? { labels: { ...m.metadata.labels } } : {};
      return mo;
    });
  }
  if (ns.pathIds.length > 0) out.path_ids = [...ns.pathIds];
  return out;
}

// ---- NetworkServiceEndpoint ----------------------------------------------------------------------------

const NSE_KEYS = ['name', 'network_service_names', 'network_service_labels', 'url', 'expiration_time', 'initial_registration_time', 'path_ids'] as const;

/** snake_case spec → NetworkServiceEndpoint. */
export function nseFromSpec(spec: unknown, field = 'spec'): NetworkServiceEndpoint {
  const o = spec === undefined || spec === null ? {} : obj(spec, field);
  onlyKeys(o, NSE_KEYS, field);
  const labels: Record<string, NetworkServiceLabels> = {};
  if (o.network_service_labels !== undefined && o.network_service_labels !== null) {
    const f = `${field}.network_service_labels`;
    for (const [svc, v] of Object.entries(obj(o.network_service_labels, f))) {
      const lo = v === null ? {} : obj(v, `${f}.${svc}`);
      onlyKeys(lo, ['labels'], `${f}.${svc}`);
      labels[svc] = { labels: strMap(lo.labels, `${f}.${svc}.labels`) };
    }
  }
  return {
    name: str(o.name, `${field}.name`),
    networkServiceNames: strList(o.network_service_names, `${field}.network_service_names`),
    networkServiceLabels: labels,
    url: str(o.url, `${field}.url`),
    expirationTime: timestampFromSpec(o.expiration_time, `${field}.expiration_time`),
    initialRegistrationTime: timestampFromSpec(o.initial_registration_time, `${field}.initial_registration_time`),
    pathIds: strList(o.path_ids, `${field}.path_ids`),
  };
}

/** NetworkServiceEndpoint → snake_case spec (empty fields omitted). */
export function nseToSpec(nse: NetworkServiceEndpoint): Obj {
  const out: Obj = {};
  if (nse.name) out.name = nse.name;
  if (nse.networkServiceNames.length > 0) out.network_service_names = [...nse.networkServiceNames];
  const svcs = Object.entries(nse.networkServiceLabels);
  if (svcs.length > 0) {
    out.network_service_labels = Object.fromEntries(svcs.map(([k, v]) => [k, nonEmpty(v.labels) ? { labels: { ...v.labels } } : {}]));
  }
  if (nse.url) out.url = nse.url;
  if (nse.expirationTime) out.expiration_time = timestampToSpec(nse.expirationTime);
  if (nse.initialRegistrationTime) out.initial_registration_time = timestampToSpec(nse.initialRegistrationTime);
  if (nse.pathIds.length > 0) out.path_ids = [...nse.pathIds];
  return out;
}

// ---- Documents -----------------------------------------------------------------------------------------

const TOP_KEYS = ['apiVersion', 'kind', 'metadata', 'spec', 'status'] as const;

/** One parsed YAML/JSON document → a custom resource. `where` prefixes every error field (e.g. `document 2`). */
export function customResourceFromObject(doc: unknown, where: string): CustomResource {
  const o = obj(doc, where);
  onlyKeys(o, TOP_KEYS, where);
  if (o.apiVersion !== CR_API_VERSION) bad(`${where}: apiVersion`, o.apiVersion, `expected ${CR_API_VERSION}`);
  if (o.kind !== KIND_NETWORK_SERVICE && o.kind !== KIND_NETWORK_SERVICE_ENDPOINT) {
    bad(`${where}: kind`, o.kind, `expected ${KIND_NETWORK_SERVICE} or ${KIND_NETWORK_SERVICE_ENDPOINT}`);
  }
  const meta = o.metadata === undefined || o.metadata === null ? {} : obj(o.metadata, `${where}: metadata`);
  const metaName = str(meta.name, `${where}: metadata.name`);
  const namespace = meta.namespace === undefined ? undefined : str(meta.namespace, `${where}: metadata.namespace`) || undefined;
  const specField = `${where}: spec`;
  if (o.kind === KIND_NETWORK_SERVICE) {
    const item = nsFromSpec(o.spec, specField);
    item.name ||= metaName;
    if (!item.name) bad(`${where}: metadata.name`, meta.name, 'a name is required (metadata.name or spec.name)');
    return { kind: KIND_NETWORK_SERVICE, metadata: { name: metaName || item.name, namespace }, item };
  }
  const item = nseFromSpec(o.spec, specField);
  item.name ||= metaName;
  if (!item.name) bad(`${where}: metadata.name`, meta.name, 'a name is required (metadata.name or spec.name)');
  return { kind: KIND_NETWORK_SERVICE_ENDPOINT, metadata: { name: metaName || item.name, namespace }, item };
}

/**
 * Parses one or more YAML documents (`---` separated; empty documents are skipped and not counted, so
 * `document 2` is the second resource in the text). `source` (a file name) prefixes error fields. Throws InvalidArgumentError on the first bad document.
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

/** A custom-resource object for `item` (the name goes to metadata.name and stays in spec.name). */
export function toCustomResource(
  cr: { kind: typeof KIND_NETWORK_SERVICE; item: NetworkService; namespace?: string } | { kind: typeof KIND_NETWORK_SERVICE_ENDPOINT; item: NetworkServiceEndpoint; namespace?: string },
): Obj {
  const metadata: Obj = { name: cr.item.name };
  if (cr.namespace) metadata.namespace = cr.namespace;
  const spec = cr.kind === KIND_NETWORK_SERVICE ? nsToSpec(cr.item) : nseToSpec(cr.item);
  return { apiVersion: CR_API_VERSION, kind: cr.kind, metadata, spec };
}

/** YAML text of several custom resources, `---` separated. */
export function stringifyCustomResources(list: ReadonlyArray<Parameters<typeof toCustomResource>[0]>): string {
  return list.map((cr) => `---\n${stringify(toCustomResource(cr))}`).join('');
}
