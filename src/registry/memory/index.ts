/**
 * In-memory registry store: NetworkServices and NetworkServiceEndpoints keyed by name.
 *
 * Guarantees: every item goes in and out as a deep copy (a caller mutating what it got back cannot
 * change the store); a watch is subscribed when `watch()` is called (not lazily at the first `next()`),
 * so a caller can subscribe, then list, and miss nothing; each watcher gets every change after that in
 * order; aborting the signal, breaking out of the iteration, or `close()` ends the stream and removes
 * its listener. Each watch buffers at most `watchLimit` events (an AsyncQueue with the `fail` policy):
 * a watcher that falls that far behind is dropped and its next read rejects with
 * ResourceExhaustedError, so it learns it must re-list instead of silently missing a delete; writers and
 * other watchers are not affected. No timers. Mirrors the maps in upstream
 * `sdk:pkg/registry/core/memory` (expiry lives in the `expire` element, not here).
 */
import { NetworkService, NetworkServiceEndpoint, type MessageFns } from '../../api/gen/registry.js';
import { AsyncQueue, DEFAULT_QUEUE_LIMIT } from '../../core/queue.js';
import { throwIfAborted } from '../../core/signals.js';
import type { RegistryStore, Store, StoreEvent } from '../store.js';

/** Events one watch may buffer before it is ended with ResourceExhaustedError. */
export const DEFAULT_WATCH_LIMIT = DEFAULT_QUEUE_LIMIT;

export interface MemoryStoreOptions {
  /** Events one watch may buffer (default DEFAULT_WATCH_LIMIT). */
  readonly watchLimit?: number;
}

type Codec<T> = Pick<MessageFns<T>, 'encode' | 'decode'>;

/** Deep copy through the generated wire codec (also normalizes defaults, as a gRPC hop would). */
export function wireCopy<T>(codec: Codec<T>, item: T): T {
  return codec.decode(codec.encode(item).finish());
}

interface Watcher<T> {
  readonly queue: AsyncQueue<StoreEvent<T>>;
  /** Unsubscribes and ends the stream; idempotent. */
  end(): void;
}

/** One kind of item (ns or nse) held in memory. */
export class MemoryStore<T extends { name: string }> implements Store<T> {
  readonly #items = new Map<string, T>();
  readonly #watchers = new Set<Watcher<T>>();
  readonly #codec: Codec<T>;
  readonly #watchLimit: number;
  #closed = false;

  constructor(codec: Codec<T>, options: MemoryStoreOptions = {}) {
    this.#codec = codec;
    this.#watchLimit = options.watchLimit ?? DEFAULT_WATCH_LIMIT;
  }

  /** Number of live watch subscriptions (tests check it drops to 0). */
  get watcherCount(): number {
    return this.#watchers.size;
  }

  get size(): number {
    return this.#items.size;
  }

  async put(item: T, opts: { signal?: AbortSignal } = {}): Promise<T> {
    if (opts.signal) throwIfAborted(opts.signal);
    const stored = this.#copy(item);
    this.#items.set(stored.name, stored);
    this.#emit('put', stored);
    return this.#copy(stored);
  }

  async get(name: string, opts: { signal?: AbortSignal } = {}): Promise<T | undefined> {
    if (opts.signal) throwIfAborted(opts.signal);
    const v = this.#items.get(name);
    return v === undefined ? undefined : this.#copy(v);
  }

  async list(opts: { signal?: AbortSignal } = {}): Promise<T[]> {
    if (opts.signal) throwIfAborted(opts.signal);
    return [...this.#items.values()].map((v) => this.#copy(v));
  }

  async delete(name: string, opts: { signal?: AbortSignal } = {}): Promise<T | undefined> {
    if (opts.signal) throwIfAborted(opts.signal);
    const v = this.#items.get(name);
    if (v === undefined) return undefined;
    this.#items.delete(name);
    this.#emit('delete', v);
    return this.#copy(v);
  }

  watch(signal: AbortSignal): AsyncIterable<StoreEvent<T>> {
    const queue = new AsyncQueue<StoreEvent<T>>({ limit: this.#watchLimit, overflow: 'fail', name: 'memory store watch' });
    const watcher: Watcher<T> = {
      queue,
      end: () => {
        this.#watchers.delete(watcher);
        signal.removeEventListener('abort', watcher.end);
        queue.close(true);
      },
    };
    if (signal.aborted || this.#closed) queue.close(true);
    else {
      this.#watchers.add(watcher);
      signal.addEventListener('abort', watcher.end, { once: true });
    }
    const iterator: AsyncIterator<StoreEvent<T>> = {
      next: () => queue.next(),
      return: async () => {
        watcher.end();
        return { done: true, value: undefined };
      },
    };
    return { [Symbol.asyncIterator]: () => iterator };
  }

  /** Ends every watch stream. Items stay readable. */
  close(): void {
    this.#closed = true;
    for (const w of [...this.#watchers]) w.end();
  }

  #emit(type: StoreEvent<T>['type'], item: T): void {
    for (const w of [...this.#watchers]) if (!w.queue.push({ type, item: this.#copy(item) })) w.end();
  }

  #copy(item: T): T {
    return wireCopy(this.#codec, item);
  }
}

export interface MemoryRegistryStore extends RegistryStore {
  readonly ns: MemoryStore<NetworkService>;
  readonly nse: MemoryStore<NetworkServiceEndpoint>;
}

/** The memory registry store (what `nsm registry` uses by default). */
export function memoryRegistryStore(options: MemoryStoreOptions = {}): MemoryRegistryStore {
  const ns = new MemoryStore<NetworkService>(NetworkService, options);
  const nse = new MemoryStore<NetworkServiceEndpoint>(NetworkServiceEndpoint, options);
  return {
    ns,
    nse,
    async close() {
      ns.close();
      nse.close();
    },
  };
}
