/**
 * One push-and-wake async queue for the whole code base: producers `push`, one consumer reads it as an
 * `AsyncIterable`. It is bounded (`limit`, with a policy for what happens when it is full) and
 * abort-aware (a signal ends the consumer's iteration; `close()` ends it after what is buffered, or at
 * once with `discard`). Iteration ends cleanly (no rejection) on close and on abort, so a `for await`
 * loop needs no try/catch for either.
 *
 * Guarantees:
 * - items come out in push order; none is delivered twice;
 * - at most `limit` items are buffered; on overflow `drop-oldest` discards the oldest buffered item,
 *   `drop-newest` refuses the pushed one, `throw` raises ResourceExhaustedError to the producer, `fail`
 *   closes the queue at once (buffered items discarded) and the consumer's next read rejects with
 *   ResourceExhaustedError (once; the iteration then ends), for streams whose consumer must learn that
 *   it lost items (a watch that cannot keep up must resync, not silently miss a delete); `push` returns
 *   false when an item was dropped;
 * - with `coalesce`, a pushed item whose key is already buffered replaces that item and moves to the back
 *   (the latest wins; a replacement is not a drop and never overflows);
 * - after `close()` every `push` is ignored (returns false);
 * - nothing is left registered on a signal after the iteration ends.
 */
import { ResourceExhaustedError } from './errors.js';

export type OverflowPolicy = 'drop-oldest' | 'drop-newest' | 'throw' | 'fail';

export interface QueueOptions<T = unknown> {
  /** Most items buffered at once (default 10 000). */
  readonly limit?: number;
  /** What a push into a full queue does (default `throw`). */
  readonly overflow?: OverflowPolicy;
  /** Ends the iteration when aborted (buffered items are dropped). */
  readonly signal?: AbortSignal;
  /** Named in the overflow error. */
  readonly name?: string;
  /** Key of an item; a push replaces the buffered item with the same key (see the guarantees). */
  readonly coalesce?: (item: T) => unknown;
}

/** The buffered items, in delivery order. */
interface Buffer<T> {
  readonly size: number;
  /** Replaces a buffered item with the same key, moving it to the back; false when there is none. */
  replace(item: T): boolean;
  add(item: T): void;
  shift(): T | undefined;
  /** Removes and returns every item, in delivery order. */
  take(): T[];
  clear(): void;
}

class ListBuffer<T> implements Buffer<T> {
  readonly #items: T[] = [];
  get size(): number {
    return this.#items.length;
  }
  replace(): boolean {
    return false;
  }
  add(item: T): void {
    this.#items.push(item);
  }
  shift(): T | undefined {
    return this.#items.shift();
  }
  take(): T[] {
    return this.#items.splice(0);
  }
  clear(): void {
    this.#items.length = 0;
  }
}

class KeyedBuffer<T> implements Buffer<T> {
  readonly #items = new Map<unknown, T>();
  constructor(readonly key: (item: T) => unknown) {}
  get size(): number {
    return this.#items.size;
  }
  replace(item: T): boolean {
    const k = this.key(item);
    if (!this.#items.delete(k)) return false;
    this.#items.set(k, item);
    return true;
  }
  add(item: T): void {
    this.#items.set(this.key(item), item);
  }
  shift(): T | undefined {
    const first = this.#items.entries().next();
    if (first.done) return undefined;
    this.#items.delete(first.value[0]);
    return first.value[1];
  }
  take(): T[] {
    const all = [...this.#items.values()];
    this.#items.clear();
    return all;
  }
  clear(): void {
    this.#items.clear();
  }
}

export const DEFAULT_QUEUE_LIMIT = 10_000;

export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: Buffer<T>;
  readonly #limit: number;
  readonly #overflow: OverflowPolicy;
  readonly #name: string;
  readonly #signal: AbortSignal | undefined;
  #wake: (() => void) | undefined;
  #closed = false;
  #dropped = 0;
  #iterating = false;
  #failure: Error | undefined;

  constructor(options: QueueOptions<T> = {}) {
    const limit = options.limit ?? DEFAULT_QUEUE_LIMIT;
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`queue limit must be a positive integer, got ${limit}`);
    this.#limit = limit;
    this.#items = options.coalesce ? new KeyedBuffer(options.coalesce) : new ListBuffer();
    this.#overflow = options.overflow ?? 'throw';
    this.#name = options.name ?? 'queue';
    this.#signal = options.signal;
    if (this.#signal?.aborted) this.close(true);
    else this.#signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Items buffered and not yet read. */
  get size(): number {
    return this.#items.size;
  }

  /** Items dropped so far by the overflow policy. */
  get dropped(): number {
    return this.#dropped;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Adds an item; returns false when it (or, with drop-oldest, an older one) was dropped or the queue is closed. */
  push(item: T): boolean {
    if (this.#closed) return false;
    if (this.#items.replace(item)) {
      this.#wakeUp();
      return true;
    }
    let kept = true;
    if (this.#items.size >= this.#limit) {
      this.#dropped++;
      if (this.#overflow === 'throw') throw new ResourceExhaustedError(`${this.#name} is full (${this.#limit} items)`);
      if (this.#overflow === 'fail') {
        this.#failure = new ResourceExhaustedError(`${this.#name} is full (${this.#limit} items): the consumer fell behind`);
        this.close(true);
        return false;
      }
      if (this.#overflow === 'drop-newest') return false;
      this.#items.shift();
      kept = false;
    }
    this.#items.add(item);
    this.#wakeUp();
    return kept;
  }

  /** Removes and returns every buffered item (oldest first); the queue stays open. */
  drain(): T[] {
    return this.#items.take();
  }

  /** Ends the stream after what is buffered; with `discard`, at once. Idempotent. */
  close(discard = false): void {
    if (discard) this.#items.clear();
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#wakeUp();
  }

  /** Reads the next item, or undefined once the queue is closed and empty; rejects once after a `fail` overflow. */
  async next(): Promise<{ value: T; done: false } | { value: undefined; done: true }> {
    for (;;) {
      if (this.#items.size > 0) return { value: this.#items.shift()!, done: false };
      if (this.#closed) {
        const failure = this.#failure;
        this.#failure = undefined;
        if (failure) throw failure;
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /** One consumer at a time; breaking out of the loop closes the queue. */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.#iterating) throw new Error(`${this.#name} has a consumer already`);
    this.#iterating = true;
    return {
      next: () => this.next() as Promise<IteratorResult<T>>,
      return: async () => {
        this.close(true);
        return { value: undefined, done: true };
      },
    };
  }

  readonly #onAbort = (): void => this.close(true);

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
