/**
 * A TEST API SERVER, NOT A REAL KUBERNETES. It lets the Kubernetes-backed registry store and the real
 * `kubectl` run against something in tests on a machine with no cluster. It is an in-process HTTP
 * server (plain http, loopback, no authentication) that implements only what those two clients use:
 *
 * - discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/networkservicemesh.io[/v1]`, and a minimal
 *   `/openapi/v3` (so `kubectl apply` validates through the server's `fieldValidation`, which this
 *   server accepts and ignores);
 * - namespaces: `GET /api/v1/namespaces[/<ns>]` (every namespace exists; nothing is enforced);
 * - the two NSM custom resources (`networkservices` / `netsvc`, `networkserviceendpoints` / `nse`):
 *   namespaced list, get, create (POST), update (PUT, resourceVersion required and checked), patch
 *   (`application/merge-patch+json`; `application/apply-patch+yaml` as a plain merge, without field
 *   ownership), delete; cluster-wide list; `?watch=true` streams of newline-delimited
 *   `{type, object}` events from a `resourceVersion` (or ADDED for everything when it is unset/"0");
 *   `fieldSelector` on `metadata.name` / `metadata.namespace` and equality `labelSelector`;
 * - `metav1.Status` bodies for errors (404 NotFound, 409 AlreadyExists / Conflict, 410 Expired as a
 *   watch ERROR event, 415, 422 Invalid), one global monotonic `resourceVersion`.
 *
 * Test hooks: `compact()` forgets the event history (a watch from an older resourceVersion then gets
 * 410 Gone, as after etcd compaction), `closeWatches()` ends every open watch stream (as the real
 * server does on its watch timeout), `expireWatches()` sends them a 410 ERROR event first. It does not
 * validate specs against CRD schemas, has no admission, no finalizers, no RBAC, no pagination (`limit`
 * is ignored) and no Table output.
 *
 * Layout: `discovery` (static documents), `ObjectStore` (objects, resourceVersions, event history),
 * `WatchHub` (open watch streams), the route handlers (`route` → namespaces / collection / item /
 * patch), and `startTestApiServer` (HTTP server plus test hooks). The CRD names (group, plural, short
 * names) come from `src/registry/cr.ts`.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { CR_API_VERSION as GROUP_VERSION, GROUP, NS_KIND, NSE_KIND, VERSION, isValidObjectName, type ResourceKind } from '../registry/cr.js';

type Resource = ResourceKind;

const RESOURCES: readonly Resource[] = [NS_KIND, NSE_KIND];

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface WatchEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  plural: string;
  object: Obj;
}

interface Filter {
  plural: string;
  namespace?: string;
  fields: Record<string, string>;
  labels: Record<string, string>;
}

interface OpenWatch {
  filter: Filter;
  res: ServerResponse;
  timer?: NodeJS.Timeout;
}

export interface TestApiServer {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** A kubeconfig (YAML) for this server: context `nsm-ts-test`, no credentials (plain http, so
   *  `insecure-skip-tls-verify`, which @kubernetes/client-node requires for http). */
  kubeconfig(namespace?: string): string;
  /** Forgets the watch history: watches from an older resourceVersion then get 410 Gone. */
  compact(): void;
  /** Ends every open watch stream. */
  closeWatches(): void;
  /** Sends every open watch an ERROR event with 410 Expired and ends it (as a lagging watch cache does). */
  expireWatches(): void;
  readonly openWatches: number;
  /** Current objects of a resource (`networkservices` / `networkserviceendpoints`), for assertions. */
  objects(plural: string): Obj[];
  /** Requests seen, as `METHOD path?query`, for assertions. */
  readonly requests: readonly string[];
  stop(): Promise<void>;
}

// ---- helpers --------------------------------------------------------------------------------------------

function statusBody(code: number, reason: string, message: string, details?: Obj): Obj {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, ...(details ? { details } : {}), code };
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Obj,
  ) {
    super(message);
  }
}

const notFound = (r: Resource, name: string) => new HttpError(404, 'NotFound', `${r.plural}.${GROUP} "${name}" not found`, { name, group: GROUP, kind: r.plural });

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const out: Obj = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target as Obj) } : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function parseSelector(raw: string | null, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const part of raw.split(',')) {
    const m = /^\s*([^=!\s]+)\s*==?\s*([^\s]*)\s*$/.exec(part);
    if (!m) throw new HttpError(400, 'BadRequest', `unsupported ${what} "${part}" (this test API server supports only k=v)`);
    out[m[1]] = m[2];
  }
  return out;
}

function matches(obj: Obj, f: Filter): boolean {
  const md = obj.metadata ?? {};
  if (f.namespace !== undefined && md.namespace !== f.namespace) return false;
  for (const [k, v] of Object.entries(f.fields)) {
    if (k === 'metadata.name' && md.name !== v) return false;
    if (k === 'metadata.namespace' && md.namespace !== v) return false;
  }
  for (const [k, v] of Object.entries(f.labels)) if ((md.labels ?? {})[k] !== v) return false;
  return true;
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<Obj> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  const ct = (req.headers['content-type'] ?? 'application/json').split(';')[0].trim();
  try {
    const body: unknown = ct.includes('yaml') ? parseYaml(text) : JSON.parse(text);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
    return body as Obj;
  } catch (err) {
    throw new HttpError(400, 'BadRequest', `cannot decode request body (${ct}): ${(err as Error).message}`);
  }
}

function kubeconfigText(url: string, namespace: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '  - name: nsm-ts-test-apiserver',
    '    cluster:',
    `      server: ${url}`,
    '      insecure-skip-tls-verify: true',
    'users:',
    '  - name: nsm-ts-test',
    '    user: {}',
    'contexts:',
    '  - name: nsm-ts-test',
    '    context:',
    '      cluster: nsm-ts-test-apiserver',
    '      user: nsm-ts-test',
    `      namespace: ${namespace}`,
    'current-context: nsm-ts-test',
    '',
  ].join('\n');
}

// ---- discovery --------------------------------------------------------------------------------------------

/** The discovery document at `path`, or undefined. */
function discovery(path: string): unknown {
  switch (path) {
    case '/version':
      return { major: '1', minor: '32', gitVersion: 'v1.32.0-nsm-ts-test-apiserver', platform: 'linux/amd64', goVersion: 'none (nsm-ts test API server, not a real Kubernetes)' };
    case '/api':
      return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1' }] };
    case '/api/v1':
      return {
        kind: 'APIResourceList',
        groupVersion: 'v1',
        resources: [{ name: 'namespaces', singularName: 'namespace', namespaced: false, kind: 'Namespace', verbs: ['get', 'list'], shortNames: ['ns'] }],
      };
    case '/apis':
      return {
        kind: 'APIGroupList',
        apiVersion: 'v1',
        groups: [{ name: GROUP, versions: [{ groupVersion: GROUP_VERSION, version: VERSION }], preferredVersion: { groupVersion: GROUP_VERSION, version: VERSION } }],
      };
    case `/apis/${GROUP}`:
      return { kind: 'APIGroup', apiVersion: 'v1', name: GROUP, versions: [{ groupVersion: GROUP_VERSION, version: VERSION }], preferredVersion: { groupVersion: GROUP_VERSION, version: VERSION } };
    case `/apis/${GROUP_VERSION}`:
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: GROUP_VERSION,
        resources: RESOURCES.map((r) => ({
          name: r.plural,
          singularName: r.singular,
          namespaced: true,
          kind: r.kind,
          verbs: ['delete', 'deletecollection', 'get', 'list', 'patch', 'create', 'update', 'watch'],
          shortNames: r.shortNames,
          storageVersionHash: r.kind,
        })),
      };
    case '/openapi/v3':
      return { paths: { [`apis/${GROUP_VERSION}`]: { serverRelativeURL: `/openapi/v3/apis/${GROUP_VERSION}?hash=nsm-ts-test` } } };
    case `/openapi/v3/apis/${GROUP_VERSION}`:
      return openApiV3();
    default:
      return undefined;
  }
}

/**
 * Just enough OpenAPI v3 for kubectl: a PATCH operation per kind that lists the `fieldValidation`
 * parameter (so kubectl leaves validation to the server instead of downloading OpenAPI v2), and the
 * CRDs' structural schema (spec preserves unknown fields).
 */
function openApiV3(): Obj {
  const paths: Obj = {};
  const schemas: Obj = {};
  for (const r of RESOURCES) {
    const gvk = { group: GROUP, version: VERSION, kind: r.kind };
    const ref = `io.networkservicemesh.${VERSION}.${r.kind}`;
    paths[`/apis/${GROUP_VERSION}/namespaces/{namespace}/${r.plural}/{name}`] = {
      patch: {
        operationId: `patch${r.kind}`,
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': gvk,
        parameters: ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((name) => ({ name, in: 'query', schema: { type: 'string' } })),
        responses: { '200': { description: 'OK', content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } } } },
      },
    };
    schemas[ref] = {
      type: 'object',
      properties: {
        apiVersion: { type: 'string' },
        kind: { type: 'string' },
        metadata: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
      },
      'x-kubernetes-group-version-kind': [gvk],
    };
  }
  return { openapi: '3.0.0', info: { title: 'nsm-ts test API server (not a real Kubernetes)', version: 'v0.1.0' }, paths, components: { schemas } };
}

const namespaceObj = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, resourceVersion: '1' }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });

// ---- objects ----------------------------------------------------------------------------------------------

/** The stored objects, the one global resourceVersion and the event history; changes go to `onEvent`. */
class ObjectStore {
  rv = 100;
  compactedAt = 0;
  readonly history: WatchEvent[] = [];
  readonly namespaces = new Set(['default', 'kube-system', 'kube-public', 'nsm-system']);
  readonly #objects = new Map<string, Obj>(); // key: plural/namespace/name

  constructor(private readonly onEvent: (ev: WatchEvent) => void) {}

  static key(plural: string, ns: string, name: string): string {
    return `${plural}/${ns}/${name}`;
  }

  get(r: Resource, ns: string, name: string): Obj | undefined {
    return this.#objects.get(ObjectStore.key(r.plural, ns, name));
  }

  list(filter: Filter): Obj[] {
    return [...this.#objects.entries()]
      .filter(([k, o]) => k.startsWith(`${filter.plural}/`) && matches(o, filter))
      .map(([, o]) => structuredClone(o))
      .sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
  }

  compact(): void {
    this.compactedAt = this.rv;
    this.history.length = 0;
  }

  create(r: Resource, ns: string, body: Obj): Obj {
    checkObject(r, ns, body);
    const name = body.metadata.name as string;
    const k = ObjectStore.key(r.plural, ns, name);
    if (this.#objects.has(k)) throw new HttpError(409, 'AlreadyExists', `${r.plural}.${GROUP} "${name}" already exists`, { name, group: GROUP, kind: r.plural });
    this.rv++;
    this.namespaces.add(ns);
    const obj: Obj = {
      ...body,
      metadata: { ...body.metadata, uid: randomUUID(), resourceVersion: String(this.rv), generation: 1, creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z') },
    };
    delete obj.metadata.generateName;
    this.#objects.set(k, obj);
    this.#record('ADDED', r.plural, obj);
    return structuredClone(obj);
  }

  update(r: Resource, ns: string, name: string, body: Obj, requireRv: boolean): Obj {
    checkObject(r, ns, body, name);
    const k = ObjectStore.key(r.plural, ns, name);
    const cur = this.#objects.get(k);
    if (!cur) throw notFound(r, name);
    const want = body.metadata.resourceVersion as string | undefined;
    if (requireRv && !want) {
      throw new HttpError(422, 'Invalid', `${r.kind}.${GROUP} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`);
    }
    if (want && want !== cur.metadata.resourceVersion) {
      throw new HttpError(409, 'Conflict', `Operation cannot be fulfilled on ${r.plural}.${GROUP} "${name}": the object has been modified; please apply your changes to the latest version and try again`, {
        name,
        group: GROUP,
        kind: r.plural,
      });
    }
    this.rv++;
    const specChanged = JSON.stringify(cur.spec) !== JSON.stringify(body.spec);
    const obj: Obj = {
      ...body,
      metadata: {
        ...body.metadata,
        uid: cur.metadata.uid,
        creationTimestamp: cur.metadata.creationTimestamp,
        generation: (cur.metadata.generation as number) + (specChanged ? 1 : 0),
        resourceVersion: String(this.rv),
      },
    };
    this.#objects.set(k, obj);
    this.#record('MODIFIED', r.plural, obj);
    return structuredClone(obj);
  }

  remove(r: Resource, ns: string, name: string): Obj {
    const k = ObjectStore.key(r.plural, ns, name);
    const o = this.#objects.get(k);
    if (!o) throw notFound(r, name);
    this.#objects.delete(k);
    this.rv++;
    const gone = { ...o, metadata: { ...o.metadata, resourceVersion: String(this.rv) } };
    this.#record('DELETED', r.plural, gone);
    return structuredClone(gone);
  }

  #record(type: WatchEvent['type'], plural: string, object: Obj): void {
    const ev: WatchEvent = { rv: this.rv, type, plural, object: structuredClone(object) };
    this.history.push(ev);
    this.onEvent(ev);
  }
}

/** Defaults and checks a create/update body as the API server does (namespace, name, apiVersion/kind). */
function checkObject(r: Resource, ns: string, body: Obj, nameFromUrl?: string): void {
  if (body.apiVersion !== GROUP_VERSION || body.kind !== r.kind) {
    throw new HttpError(400, 'BadRequest', `the API version in the data (${body.apiVersion}) and kind (${body.kind}) do not match ${GROUP_VERSION} ${r.kind}`);
  }
  if (typeof body.metadata !== 'object' || body.metadata === null) body.metadata = {};
  const md = body.metadata as Obj;
  if (md.namespace !== undefined && md.namespace !== ns) {
    throw new HttpError(400, 'BadRequest', `the namespace of the provided object (${md.namespace}) does not match the namespace sent on the request (${ns})`);
  }
  if (!md.name && md.generateName && nameFromUrl === undefined) md.name = `${md.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`;
  if (nameFromUrl !== undefined && md.name !== undefined && md.name !== nameFromUrl) {
    throw new HttpError(400, 'BadRequest', `the name of the object (${md.name}) does not match the name on the URL (${nameFromUrl})`);
  }
  if (nameFromUrl !== undefined) md.name = nameFromUrl;
  if (typeof md.name !== 'string' || !isValidObjectName(md.name)) {
    throw new HttpError(422, 'Invalid', `${r.kind}.${GROUP} "${md.name ?? ''}" is invalid: metadata.name: Invalid value: a lowercase RFC 1123 subdomain is required`);
  }
  md.namespace = ns;
}

// ---- watches ----------------------------------------------------------------------------------------------

/** The open `?watch=true` streams: newline-delimited `{type, object}` events. */
class WatchHub {
  readonly #open = new Set<OpenWatch>();

  get size(): number {
    return this.#open.size;
  }

  /** Sends a recorded change to every open watch it matches. */
  broadcast(ev: WatchEvent): void {
    for (const w of this.#open) if (w.filter.plural === ev.plural && matches(ev.object, w.filter)) send(w, ev.type, ev.object);
  }

  /** Starts a stream: replays the history after `resourceVersion` (410 when compacted away), or everything as ADDED. */
  start(req: IncomingMessage, res: ServerResponse, filter: Filter, q: URLSearchParams, store: ObjectStore): void {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const w: OpenWatch = { filter, res };
    const fromRaw = q.get('resourceVersion');
    if (fromRaw && fromRaw !== '0') {
      const from = Number(fromRaw);
      if (!Number.isInteger(from) || from < store.compactedAt) {
        send(w, 'ERROR', statusBody(410, 'Expired', `too old resource version: ${fromRaw} (${store.compactedAt})`));
        res.end();
        return;
      }
      for (const ev of store.history) if (ev.rv > from && ev.plural === filter.plural && matches(ev.object, filter)) send(w, ev.type, ev.object);
    } else {
      for (const o of store.list(filter)) send(w, 'ADDED', o);
    }
    this.#open.add(w);
    const timeout = Number(q.get('timeoutSeconds') ?? '0');
    if (timeout > 0) w.timer = setTimeout(() => this.#end(w), timeout * 1000);
    const drop = () => {
      if (w.timer) clearTimeout(w.timer);
      this.#open.delete(w);
    };
    req.on('close', drop);
    res.on('close', drop);
  }

  /** Ends every stream, after an ERROR event when given. */
  endAll(error?: Obj): void {
    for (const w of [...this.#open]) {
      if (error) send(w, 'ERROR', error);
      this.#end(w);
    }
  }

  #end(w: OpenWatch): void {
    if (w.timer) clearTimeout(w.timer);
    this.#open.delete(w);
    w.res.end();
  }
}

function send(w: OpenWatch, type: string, object: Obj): void {
  w.res.write(`${JSON.stringify({ type, object })}\n`);
}

// ---- routes -----------------------------------------------------------------------------------------------

interface State {
  readonly store: ObjectStore;
  readonly watches: WatchHub;
  readonly requests: string[];
}

const CR_PATH = new RegExp(`^/apis/${GROUP.replace(/\./g, '\\.')}/${VERSION}(?:/namespaces/([^/]+))?/([^/]+)(?:/([^/]+))?$`);

/** Dispatches one request: discovery, namespaces, or a custom-resource collection or item. */
async function route(st: State, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const u = new URL(req.url ?? '/', 'http://localhost');
  const path = u.pathname.replace(/\/+$/, '') || '/';
  const method = req.method ?? 'GET';
  st.requests.push(`${method} ${path}${u.search}`);

  if (method === 'GET') {
    const d = discovery(path);
    if (d !== undefined) return reply(res, 200, d);
  }
  const nsPath = /^\/api\/v1\/namespaces(?:\/([^/]+))?$/.exec(path);
  if (nsPath && method === 'GET') {
    if (nsPath[1]) return reply(res, 200, namespaceObj(nsPath[1]));
    return reply(res, 200, { apiVersion: 'v1', kind: 'NamespaceList', metadata: { resourceVersion: String(st.store.rv) }, items: [...st.store.namespaces].sort().map(namespaceObj) });
  }
  const m = CR_PATH.exec(path);
  const r = m && RESOURCES.find((x) => x.plural === m[2]);
  if (!m || !r) throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${method} ${path}; this is the nsm-ts test API server, not a real Kubernetes)`);
  const ns = m[1];
  if (m[3] === undefined) return collection(st, req, res, { r, ns, path, q: u.searchParams });
  const name = decodeURIComponent(m[3]);
  if (ns === undefined) throw new HttpError(404, 'NotFound', `${r.plural} are namespaced; use /namespaces/<ns>/${r.plural}/${name}`);
  return item(st, req, res, { r, ns, name, path });
}

/** `/…/<plural>` (optionally under a namespace): list, watch, create. */
async function collection(st: State, req: IncomingMessage, res: ServerResponse, at: { r: Resource; ns?: string; path: string; q: URLSearchParams }): Promise<void> {
  const { r, ns, q } = at;
  const method = req.method ?? 'GET';
  if (method === 'GET') {
    const filter: Filter = { plural: r.plural, namespace: ns, fields: parseSelector(q.get('fieldSelector'), 'fieldSelector'), labels: parseSelector(q.get('labelSelector'), 'labelSelector') };
    if (q.get('watch') === 'true' || q.get('watch') === '1') return st.watches.start(req, res, filter, q, st.store);
    return reply(res, 200, { apiVersion: GROUP_VERSION, kind: `${r.kind}List`, metadata: { resourceVersion: String(st.store.rv) }, items: st.store.list(filter) });
  }
  if (method === 'POST' && ns !== undefined) return reply(res, 201, st.store.create(r, ns, await readBody(req)));
  throw new HttpError(405, 'MethodNotAllowed', `${method} is not supported on ${at.path}`);
}

/** `/namespaces/<ns>/<plural>/<name>`: get, replace, patch, delete. */
async function item(st: State, req: IncomingMessage, res: ServerResponse, at: { r: Resource; ns: string; name: string; path: string }): Promise<void> {
  const { r, ns, name } = at;
  const method = req.method ?? 'GET';
  switch (method) {
    case 'GET': {
      const o = st.store.get(r, ns, name);
      if (!o) throw notFound(r, name);
      return reply(res, 200, o);
    }
    case 'PUT':
      return reply(res, 200, st.store.update(r, ns, name, await readBody(req), true));
    case 'PATCH':
      return patch(st, req, res, at);
    case 'DELETE':
      return reply(res, 200, st.store.remove(r, ns, name));
    default:
      throw new HttpError(405, 'MethodNotAllowed', `${method} is not supported on ${at.path}`);
  }
}

/** PATCH as a JSON merge patch; server-side apply (`apply-patch+yaml`) as a plain merge that may create. */
async function patch(st: State, req: IncomingMessage, res: ServerResponse, at: { r: Resource; ns: string; name: string }): Promise<void> {
  const { r, ns, name } = at;
  const ct = (req.headers['content-type'] ?? '').split(';')[0].trim();
  const body = await readBody(req);
  const cur = st.store.get(r, ns, name);
  if (ct === 'application/apply-patch+yaml') {
    if (!cur) return reply(res, 201, st.store.create(r, ns, { ...body, metadata: { ...(body.metadata ?? {}), name } }));
    const merged = mergePatch(structuredClone(cur), body) as Obj;
    merged.metadata.resourceVersion = cur.metadata.resourceVersion;
    return reply(res, 200, st.store.update(r, ns, name, merged, false));
  }
  if (ct !== 'application/merge-patch+json') {
    throw new HttpError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/apply-patch+yaml (got ${ct})`);
  }
  if (!cur) throw notFound(r, name);
  const merged = mergePatch(structuredClone(cur), body) as Obj;
  if (!body.metadata?.resourceVersion) merged.metadata.resourceVersion = cur.metadata.resourceVersion;
  return reply(res, 200, st.store.update(r, ns, name, merged, false));
}

// ---- server -----------------------------------------------------------------------------------------------

/** Starts the test API server on 127.0.0.1 (port 0 = any free port). */
export async function startTestApiServer(opts: { port?: number } = {}): Promise<TestApiServer> {
  const watches = new WatchHub();
  const st: State = { store: new ObjectStore((ev) => watches.broadcast(ev)), watches, requests: [] };

  const server: Server = createServer((req, res) => {
    route(st, req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) reply(res, err.code, statusBody(err.code, err.reason, err.message, err.details));
      else reply(res, 500, statusBody(500, 'InternalError', (err as Error).message));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    kubeconfig: (namespace = 'default') => kubeconfigText(url, namespace),
    compact: () => st.store.compact(),
    closeWatches: () => watches.endAll(),
    expireWatches: () => watches.endAll(statusBody(410, 'Expired', 'The resourceVersion for the provided watch is too old.')),
    get openWatches() {
      return watches.size;
    },
    objects: (plural) => st.store.list({ plural, fields: {}, labels: {} }),
    requests: st.requests,
    async stop() {
      watches.endAll();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
