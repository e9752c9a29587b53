/**
 * Typed per-connection state. Elements declare a `StateKey<T>` once at module level and read or write
 * their value through the connection's `StateStore`, which `begin` creates and drops on Close.
 */
export class StateKey<T> {
  constructor(readonly name: string) {}
  /** Only for typing; never read. */
  declare readonly _type?: T;
}

export class StateStore {
  readonly #values = new Map<StateKey<unknown>, unknown>();

  get<T>(key: StateKey<T>): T | undefined {
    return this.#values.get(key as StateKey<unknown>) as T | undefined;
  }

  set<T>(key: StateKey<T>, value: T): void {
    this.#values.set(key as StateKey<unknown>, value);
  }

  /** Returns the value, creating it with `init` when absent. */
  ensure<T>(key: StateKey<T>, init: () => T): T {
    if (!this.#values.has(key as StateKey<unknown>)) this.#values.set(key as StateKey<unknown>, init());
    return this.#values.get(key as StateKey<unknown>) as T;
  }

  delete<T>(key: StateKey<T>): T | undefined {
    const v = this.get(key);
    this.#values.delete(key as StateKey<unknown>);
    return v;
  }

  clear(): void {
    this.#values.clear();
  }

  get size(): number {
    return this.#values.size;
  }
}
