/**
 * Per-key FIFO serialization: `run(key, fn)` starts `fn` after every earlier `fn` of the same key has
 * settled. Keys without pending work hold no memory.
 */
export class KeyedSerializer {
  readonly #queues = new Map<string, { tail: Promise<unknown>; pending: number }>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let q = this.#queues.get(key);
    if (!q) {
      q = { tail: Promise.resolve(), pending: 0 };
      this.#queues.set(key, q);
    }
    const queue = q;
    queue.pending++;
    const result = queue.tail.then(fn);
    queue.tail = result.then(
      () => this.#settled(key, queue),
      () => this.#settled(key, queue),
    );
    return result;
  }

  /** Number of keys with pending work (tests check it drops to 0). */
  get size(): number {
    return this.#queues.size;
  }

  #settled(key: string, queue: { pending: number }): void {
    if (--queue.pending === 0 && this.#queues.get(key) === queue) this.#queues.delete(key);
  }
}
