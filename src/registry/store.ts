/**
 * The registry's storage contract. The memory store and the Kubernetes store implement it, and one
 * contract suite (store-contract.ts) runs against both. Items are keyed by `name`. Watch streams carry
 * every change after the subscription; they end when the signal aborts and leave no listener behind.
 */
import type { NetworkService, NetworkServiceEndpoint } from '../api/gen/registry.js';

export interface StoreEvent<T> {
  readonly type: 'put' | 'delete';
  readonly item: T;
}

export interface Store<T extends { name: string }> {
  /** Creates or replaces the item with this name; returns what is stored. */
  put(item: T, opts?: { signal?: AbortSignal }): Promise<T>;
  get(name: string, opts?: { signal?: AbortSignal }): Promise<T | undefined>;
  list(opts?: { signal?: AbortSignal }): Promise<T[]>;
  /** Removes the item; returns it, or undefined when there was none. */
  delete(name: string, opts?: { signal?: AbortSignal }): Promise<T | undefined>;
  watch(signal: AbortSignal): AsyncIterable<StoreEvent<T>>;
}

export interface RegistryStore {
  readonly ns: Store<NetworkService>;
  readonly nse: Store<NetworkServiceEndpoint>;
  close(): Promise<void>;
}
