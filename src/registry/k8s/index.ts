/**
 * Kubernetes-backed registry store (mirrors upstream `sdk-k8s:pkg/registry/etcd`): NetworkServices and
 * NetworkServiceEndpoints are `networkservicemesh.io/v1` custom resources, `metadata.name` = item name,
 * `spec` = the message as upstream's snake_case JSON (see ../cr.ts; read back in its lenient mode).
 *
 * Guarantees:
 * - `put` creates in the configured namespace; when the name exists (409 AlreadyExists) it replaces the
 *   object with the current resourceVersion, retrying on 409 Conflict.
 * - `get`, `list`, `delete` see all namespaces (own namespace first for `get`/`delete`), as upstream's
 *   Find does. A CR whose spec does not convert is skipped by `list` with a warning.
 * - `watch` uses the Kubernetes watch API on the cluster-wide collection: every change after the
 *   subscription (the store's own writes issued after `watch()` is called are included). When the server
 *   ends the stream or answers 410 Gone, the store re-lists, emits the difference against what it has
 *   already emitted, and watches again from the list's resourceVersion. Aborting the signal ends the
 *   iteration and the HTTP watch; no timer or request is left behind. `close()` ends every watch.
 * - each watch buffers at most `watchLimit` events (an AsyncQueue with the `fail` policy): a consumer
 *   that falls further behind has its watch ended and its next read rejected with
 *   ResourceExhaustedError, so it re-lists rather than silently missing a delete.
 *
 * Requests use the official client (`@kubernetes/client-node`: CustomObjectsApi, Watch). Errors map to
 * our classes: 401/403 PermissionDeniedError, 400/422 InvalidArgumentError, others UnavailableError.
 */
import { ApiException, CustomObjectsApi, KubeConfig, Watch } from '@kubernetes/client-node';
import type { NetworkService, NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { InvalidArgumentError, NsmError, PermissionDeniedError, UnavailableError, errorMessage } from '../../core/errors.js';
import { silentLogger, type Logger } from '../../core/log.js';
import { AsyncQueue, DEFAULT_QUEUE_LIMIT } from '../../core/queue.js';
import { abortable, sleep } from '../../core/signals.js';
import { GROUP, NS_KIND, NSE_KIND, VERSION, nseFromResource, nseToResource, nsFromResource, nsToResource, type ResourceKind, type ResourceObject } from '../cr.js';
import type { RegistryStore, Store, StoreEvent } from '../store.js';

export const DEFAULT_NAMESPACE = 'default';
/** First delay before re-watching after a failed watch request; doubles up to DEFAULT_REWATCH_MAX_MS. */
export const DEFAULT_REWATCH_MIN_MS = 100;
export const DEFAULT_REWATCH_MAX_MS = 5_000;
/** Events one watch may buffer before it is ended with ResourceExhaustedError. */
export const DEFAULT_WATCH_LIMIT = DEFAULT_QUEUE_LIMIT;
const PUT_ATTEMPTS = 5;

export interface K8sStoreOptions {
  /** Namespace where CRs are created (upstream `NSM_NAMESPACE`). */
  namespace?: string;
  log?: Logger;
  rewatchMinMs?: number;
  rewatchMaxMs?: number;
  /** Events one watch may buffer (default DEFAULT_WATCH_LIMIT). */
  watchLimit?: number;
}

/** Loads a KubeConfig: an explicit kubeconfig file, else in-cluster service account, else ~/.kube/config. */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new InvalidArgumentError('kubeconfig', kubeconfigPath ?? '', 'no current cluster: set NSM_KUBECONFIG/KUBECONFIG or run in a pod with a service account');
  return kc;
}

export interface K8sStore<T extends { name: string }> extends Store<T> {
  /** Watch subscriptions not yet released (leak checks). */
  readonly watcherCount: number;
}

export interface K8sRegistryStore extends RegistryStore {
  readonly ns: K8sStore<NetworkService>;
  readonly nse: K8sStore<NetworkServiceEndpoint>;
}

/** A RegistryStore on the Kubernetes API described by `kc`. */
export function k8sRegistryStore(kc: KubeConfig, options: K8sStoreOptions = {}): K8sRegistryStore {
  const cfg = Object.freeze({
    namespace: options.namespace ?? DEFAULT_NAMESPACE,
    log: (options.log ?? silentLogger).child({ element: 'k8s-store' }),
    rewatchMinMs: options.rewatchMinMs ?? DEFAULT_REWATCH_MIN_MS,
    rewatchMaxMs: options.rewatchMaxMs ?? DEFAULT_REWATCH_MAX_MS,
    watchLimit: options.watchLimit ?? DEFAULT_WATCH_LIMIT,
  });
  const api = kc.makeApiClient(CustomObjectsApi);
  const watcher = new Watch(kc);
  const lifetime = new AbortController();
  const running = new Set<Promise<void>>();
  const ns = new CrStore<NetworkService>(api, watcher, cfg, NS_KIND, nsFromResource, nsToResource, lifetime.signal, running);
  const nse = new CrStore<NetworkServiceEndpoint>(api, watcher, cfg, NSE_KIND, nseFromResource, nseToResource, lifetime.signal, running);
  return {
    ns,
    nse,
    async close() {
      lifetime.abort(new NsmError('k8s store closed'));
      await Promise.allSettled([...running]);
    },
  };
}

interface Cfg {
  readonly namespace: string;
  readonly log: Logger;
  readonly rewatchMinMs: number;
  readonly rewatchMaxMs: number;
  readonly watchLimit: number;
}

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function statusCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return err.code;
  const c = (err as { statusCode?: unknown; code?: unknown } | undefined)?.statusCode;
  return typeof c === 'number' ? c : undefined;
}

function statusMessage(err: unknown): string {
  if (err instanceof ApiException) {
    let body: unknown = err.body;
    if (typeof body === 'string') {
      try {
        body = JSON.parse(body);
      } catch {
        /* plain text */
      }
    }
    const msg = (body as { message?: unknown } | undefined)?.message;
    return `HTTP ${err.code}: ${typeof msg === 'string' ? msg : typeof body === 'string' ? body : err.message}`;
  }
  return errorMessage(err);
}

function mapError(err: unknown, what: string): Error {
  if (err instanceof NsmError) return err;
  const code = statusCode(err);
  const msg = `${what}: ${statusMessage(err)}`;
  if (code === 401 || code === 403) return new PermissionDeniedError(msg, { cause: err });
  if (code === 400 || code === 422) return new InvalidArgumentError(what, statusMessage(err), 'rejected by the Kubernetes API', { cause: err });
  return new UnavailableError(msg, { cause: err });
}


type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
type WatchOutcome = { kind: 'ended' | 'gone' } | { kind: 'failed'; error: string };

/** What one subscription has emitted, by namespace/name, and the resourceVersion its next watch starts from. */
interface Emitted<T> {
  readonly known: Map<string, { rv: string; item: T }>;
  from: string;
}

const keyOf = (cr: Obj) => `${cr.metadata?.namespace ?? ''}/${cr.metadata?.name ?? ''}`;

class CrStore<T extends { name: string }> implements K8sStore<T> {
  /** Subscriptions still taking their initial list; writes wait for them so they are not missed. */
  readonly #subscribing = new Set<Promise<void>>();

  constructor(
    private readonly api: CustomObjectsApi,
    private readonly watcher: Watch,
    private readonly cfg: Cfg,
    private readonly kind: ResourceKind,
    private readonly fromResource: (cr: unknown) => T,
    private readonly toResource: (item: T, namespace?: string, resourceVersion?: string) => ResourceObject,
    private readonly lifetime: AbortSignal,
    private readonly running: Set<Promise<void>>,
  ) {}

  #params(namespace = this.cfg.namespace) {
    return { group: GROUP, version: VERSION, namespace, plural: this.kind.plural };
  }

  async #settled(): Promise<void> {
    if (this.#subscribing.size > 0) await Promise.allSettled([...this.#subscribing]);
  }

  async put(item: T, opts: { signal?: AbortSignal } = {}): Promise<T> {
    const body = this.toResource(item, this.cfg.namespace);
    await this.#settled();
    const what = `put ${this.kind.kind} ${item.name}`;
    for (let attempt = 1; ; attempt++) {
      try {
        const created = (await abortable(this.api.createNamespacedCustomObject({ ...this.#params(), body }), opts.signal)) as Obj;
        return this.fromResource(created);
      } catch (err) {
        if (statusCode(err) !== 409) throw mapError(err, what);
      }
      try {
        const current = (await abortable(this.api.getNamespacedCustomObject({ ...this.#params(), name: item.name }), opts.signal)) as Obj;
        const replacement = this.toResource(item, this.cfg.namespace, current.metadata?.resourceVersion as string);
        const replaced = (await abortable(this.api.replaceNamespacedCustomObject({ ...this.#params(), name: item.name, body: replacement }), opts.signal)) as Obj;
        return this.fromResource(replaced);
      } catch (err) {
        const code = statusCode(err);
        // 404: deleted in between, create again; 409: modified in between, replace again.
        if ((code !== 404 && code !== 409) || attempt >= PUT_ATTEMPTS) throw mapError(err, what);
        this.cfg.log.debug({ name: item.name, code, attempt }, 'put raced with another writer; retrying');
      }
    }
  }

  /** The raw CR with this name: own namespace first, then any namespace. */
  async #find(name: string, signal: AbortSignal | undefined): Promise<Obj | undefined> {
    try {
      return (await abortable(this.api.getNamespacedCustomObject({ ...this.#params(), name }), signal)) as Obj;
    } catch (err) {
      if (statusCode(err) !== 404) throw mapError(err, `get ${this.kind.kind} ${name}`);
    }
    try {
      const list = (await abortable(
        this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: this.kind.plural, fieldSelector: `metadata.name=${name}` }),
        signal,
      )) as Obj;
      return (list.items as Obj[] | undefined)?.[0];
    } catch (err) {
      throw mapError(err, `get ${this.kind.kind} ${name}`);
    }
  }

  async get(name: string, opts: { signal?: AbortSignal } = {}): Promise<T | undefined> {
    const cr = await this.#find(name, opts.signal);
    return cr === undefined ? undefined : this.fromResource(cr);
  }

  async #listRaw(signal: AbortSignal | undefined): Promise<{ items: Obj[]; resourceVersion: string }> {
    try {
      const list = (await abortable(this.api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: this.kind.plural }), signal)) as Obj;
      return { items: (list.items as Obj[] | undefined) ?? [], resourceVersion: String(list.metadata?.resourceVersion ?? '') };
    } catch (err) {
      throw mapError(err, `list ${this.kind.plural}`);
    }
  }

  #convert(cr: Obj): T | undefined {
    try {
      return this.fromResource(cr);
    } catch (err) {
      this.cfg.log.warn({ namespace: cr.metadata?.namespace, name: cr.metadata?.name, err: errorMessage(err) }, `skipping ${this.kind.kind} that does not convert`);
      return undefined;
    }
  }

  async list(opts: { signal?: AbortSignal } = {}): Promise<T[]> {
    const { items } = await this.#listRaw(opts.signal);
    return items.map((cr) => this.#convert(cr)).filter((x): x is T => x !== undefined);
  }

  async delete(name: string, opts: { signal?: AbortSignal } = {}): Promise<T | undefined> {
    await this.#settled();
    const cr = await this.#find(name, opts.signal);
    if (cr === undefined) return undefined;
    const namespace = String(cr.metadata?.namespace ?? this.cfg.namespace);
    try {
      const gone = (await abortable(this.api.deleteNamespacedCustomObject({ ...this.#params(namespace), name: String(cr.metadata?.name ?? name) }), opts.signal)) as Obj;
      return this.#convert(gone?.kind === this.kind.kind ? gone : cr) ?? this.#convert(cr);
    } catch (err) {
      if (statusCode(err) === 404) return undefined;
      throw mapError(err, `delete ${this.kind.kind} ${name}`);
    }
  }

  /** Watch subscriptions not yet released (for leak checks in tests). */
  get watcherCount(): number {
    return this.#watchers;
  }

  #watchers = 0;

  watch(signal: AbortSignal): AsyncIterable<StoreEvent<T>> {
    const queue = new AsyncQueue<StoreEvent<T>>({ limit: this.cfg.watchLimit, overflow: 'fail', name: `${this.kind.plural} watch` });
    const stop = new AbortController();
    let released = false;
    // Synchronous, idempotent: after abort or break the caller's signal holds no listener of ours.
    const release = () => {
      if (released) return;
      released = true;
      this.#watchers--;
      signal.removeEventListener('abort', onAbort);
      this.lifetime.removeEventListener('abort', onAbort);
      stop.abort();
      queue.close(true);
    };
    const onAbort = () => release();
    this.#watchers++;
    signal.addEventListener('abort', onAbort, { once: true });
    this.lifetime.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted || this.lifetime.aborted) release();
    // A push refused by the queue means it overflowed (or the watch is over): end the watch.
    const emit = (ev: StoreEvent<T>) => {
      if (!queue.push(ev)) release();
    };

    let subscribed!: () => void;
    const subscribing = new Promise<void>((r) => (subscribed = r));
    this.#subscribing.add(subscribing);
    const done: Promise<void> = this.#watchLoop(emit, stop.signal, subscribed)
      .catch((err: unknown) => {
        if (!stop.signal.aborted) this.cfg.log.error({ err: errorMessage(err) }, `${this.kind.plural} watch ended`);
      })
      .finally(() => {
        subscribed();
        this.#subscribing.delete(subscribing);
        release();
        this.running.delete(done);
      });
    this.running.add(done);
    const iterator: AsyncIterator<StoreEvent<T>> = {
      next: () => queue.next(),
      return: async () => {
        release();
        return { done: true, value: undefined };
      },
    };
    return { [Symbol.asyncIterator]: () => iterator };
  }

  /** List, then watch from the list's resourceVersion, until `stop`; the first list only learns the state. */
  async #watchLoop(emit: (ev: StoreEvent<T>) => void, stop: AbortSignal, subscribed: () => void): Promise<void> {
    const log = this.cfg.log.child({ watch: this.kind.plural });
    const emitted: Emitted<T> = { known: new Map(), from: '' };
    let first = true;
    let backoff = this.cfg.rewatchMinMs;
    const pause = async () => {
      await sleep(backoff, stop).catch(() => undefined);
      backoff = Math.min(backoff * 2, this.cfg.rewatchMaxMs);
    };

    while (!stop.aborted) {
      try {
        await this.#relist(emitted, first ? undefined : emit, stop);
      } catch (err) {
        if (stop.aborted) return;
        log.warn({ err: errorMessage(err), retryInMs: backoff }, 'list failed; retrying');
        await pause();
        continue;
      }
      if (first) {
        first = false;
        subscribed();
      }
      const outcome = await this.#watchOnce(emitted.from, stop, (type, cr) => this.#applyWatchEvent(emitted, type, cr, emit));
      if (stop.aborted) return;
      if (outcome.kind === 'failed') {
        log.warn({ err: outcome.error, retryInMs: backoff }, 'watch failed; re-listing');
        await pause();
      } else {
        backoff = this.cfg.rewatchMinMs;
        log.debug({ outcome: outcome.kind, from: emitted.from }, 'watch stream ended; re-listing');
      }
    }
  }

  /** Lists everything and emits the difference against what was emitted (no `emit`: only learns). */
  async #relist(emitted: Emitted<T>, emit: ((ev: StoreEvent<T>) => void) | undefined, signal: AbortSignal): Promise<void> {
    const { items, resourceVersion } = await this.#listRaw(signal);
    const seen = new Set<string>();
    for (const cr of items) {
      const k = keyOf(cr);
      seen.add(k);
      const rv = String(cr.metadata?.resourceVersion ?? '');
      if (emitted.known.get(k)?.rv === rv) continue;
      const item = this.#convert(cr);
      if (item === undefined) continue;
      emitted.known.set(k, { rv, item });
      emit?.({ type: 'put', item });
    }
    for (const [k, v] of emitted.known) {
      if (seen.has(k)) continue;
      emitted.known.delete(k);
      emit?.({ type: 'delete', item: v.item });
    }
    emitted.from = resourceVersion;
  }

  #applyWatchEvent(emitted: Emitted<T>, type: WatchEventType, cr: Obj, emit: (ev: StoreEvent<T>) => void): void {
    const k = keyOf(cr);
    emitted.from = String(cr.metadata?.resourceVersion ?? emitted.from);
    if (type === 'BOOKMARK') return;
    if (type === 'DELETED') {
      const prev = emitted.known.get(k);
      emitted.known.delete(k);
      const item = this.#convert(cr) ?? prev?.item;
      if (item) emit({ type: 'delete', item });
      return;
    }
    const item = this.#convert(cr);
    if (item === undefined) return;
    emitted.known.set(k, { rv: emitted.from, item });
    emit({ type: 'put', item });
  }

  /** One HTTP watch from `from`; resolves when the stream ends, the server says 410, or `stop` aborts. */
  #watchOnce(from: string, stop: AbortSignal, onEvent: (type: WatchEventType, cr: Obj) => void): Promise<WatchOutcome> {
    return new Promise((resolve) => {
      let controller: AbortController | undefined;
      let finished = false;
      let gone = false;
      const finish = (r: WatchOutcome) => {
        if (finished) return;
        finished = true;
        stop.removeEventListener('abort', onAbort);
        controller?.abort();
        resolve(r);
      };
      const onAbort = () => finish({ kind: 'ended' });
      stop.addEventListener('abort', onAbort, { once: true });
      this.watcher
        .watch(
          `/apis/${GROUP}/${VERSION}/${this.kind.plural}`,
          { resourceVersion: from || undefined, allowWatchBookmarks: true },
          (phase: string, obj: Obj) => {
            if (finished) return;
            if (phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED') onEvent(phase, obj);
            else if (phase === 'BOOKMARK') onEvent(phase, obj);
            else if (phase === 'ERROR') {
              gone = obj?.code === 410;
              finish(gone ? { kind: 'gone' } : { kind: 'failed', error: String(obj?.message ?? 'watch error event') });
            }
          },
          (err: unknown) => {
            if (err && !stop.aborted && (err as { name?: string }).name !== 'AbortError') finish({ kind: 'failed', error: errorMessage(err) });
            else finish({ kind: gone ? 'gone' : 'ended' });
          },
        )
        .then(
          (c) => {
            controller = c;
            if (finished) c.abort();
          },
          (err: unknown) => finish({ kind: 'failed', error: errorMessage(err) }),
        );
    });
  }
}
