/**
 * The store contract suite: one set of node:test tests that every `RegistryStore` (memory, Kubernetes)
 * must pass. It only uses the `RegistryStore` interface; a store may additionally report its live
 * watch listeners (`listeners()`) so the suite can check that a cancelled watch leaves none behind.
 *
 * "After the subscription" means: every change made after `watch()` has returned is delivered, even
 * if the caller has not called `next()` yet (the `store` element subscribes, then lists, and relies
 * on that to lose nothing). Every wait in the suite is bounded, so a broken store fails, not hangs.
 */
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import type { NetworkService, NetworkServiceEndpoint } from '../api/gen/registry.js';
import { NetworkService as NsCodec, NetworkServiceEndpoint as NseCodec } from '../api/gen/registry.js';
import type { RegistryStore, Store, StoreEvent } from './store.js';

export interface StoreUnderTest {
  store: RegistryStore;
  cleanup(): Promise<void>;
  /** Optional: live watch subscriptions of the store (ns + nse); must return to 0 after cancel. */
  listeners?(): number;
}

const WATCH_TIMEOUT_MS = 10_000;

function nse(name: string, patch: Partial<NetworkServiceEndpoint> = {}): NetworkServiceEndpoint {
  return NseCodec.fromPartial({
    name,
    networkServiceNames: ['contract-ns'],
    networkServiceLabels: { 'contract-ns': { labels: { app: name } } },
    url: 'tcp://127.0.0.1:5001',
    expirationTime: new Date(1_700_000_060_000),
    initialRegistrationTime: new Date(1_700_000_000_000),
    ...patch,
  });
}

function ns(name: string, patch: Partial<NetworkService> = {}): NetworkService {
  return NsCodec.fromPartial({ name, payload: 'ETHERNET', ...patch });
}

/** One `next()` bounded by the suite's timeout. */
async function nextWithin<T>(it: AsyncIterator<T>, what: string): Promise<IteratorResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`watch: ${what} within ${WATCH_TIMEOUT_MS} ms`)), WATCH_TIMEOUT_MS);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads `n` events from a watch, failing (not hanging) after a generous timeout. */
async function take<T>(it: AsyncIterator<StoreEvent<T>>, n: number): Promise<StoreEvent<T>[]> {
  const out: StoreEvent<T>[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`watch delivered ${out.length} of ${n} events`)), WATCH_TIMEOUT_MS);
  });
  try {
    while (out.length < n) {
      const r = await Promise.race([it.next(), timeout]);
      if (r.done) break;
      out.push(r.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return out;
}

function sortByName<T extends { name: string }>(items: T[]): T[] {
  return [...items].sort((a, b) => a.name.localeCompare(b.name));
}

type WithStore = (fn: (s: StoreUnderTest) => Promise<void>) => () => Promise<void>;
type Kind = 'ns' | 'nse';
type Item = NetworkService & NetworkServiceEndpoint;

const make = (kind: Kind, n: string) => (kind === 'ns' ? ns(n) : nse(n)) as Item;
const pick = (kind: Kind, s: RegistryStore) => s[kind] as Store<Item>;
/** The item `a` with one field changed. */
const changedA = (kind: Kind, nseUrl: string) => (kind === 'ns' ? ns('a', { payload: 'IP' }) : nse('a', { url: nseUrl })) as Item;

/** put/get/list/delete, replacement and copying for one kind. */
function crudCases(kind: Kind, withStore: WithStore): void {
  it(`${kind}: put, get, list, delete`, withStore(async ({ store }) => {
    const st = pick(kind, store);
    assert.deepEqual(await st.list(), []);
    assert.equal(await st.get('a'), undefined);
    const put = await st.put(make(kind, 'a'));
    assert.deepEqual(put, make(kind, 'a'));
    await st.put(make(kind, 'b'));
    assert.deepEqual(await st.get('a'), make(kind, 'a'));
    assert.deepEqual(sortByName(await st.list()), [make(kind, 'a'), make(kind, 'b')]);
    assert.deepEqual(await st.delete('a'), make(kind, 'a'));
    assert.equal(await st.get('a'), undefined);
    assert.deepEqual(await st.list(), [make(kind, 'b')]);
    assert.equal(await st.delete('a'), undefined, 'deleting a missing item returns undefined');
  }));

  it(`${kind}: put replaces the item with the same name`, withStore(async ({ store }) => {
    const st = pick(kind, store);
    await st.put(make(kind, 'a'));
    const changed = changedA(kind, 'unix:///tmp/x.sock');
    await st.put(changed);
    assert.deepEqual(await st.list(), [changed]);
    assert.deepEqual(await st.get('a'), changed);
  }));

  it(`${kind}: returned items are deep copies`, withStore(async ({ store }) => {
    const st = pick(kind, store);
    const input = make(kind, 'a');
    const put = await st.put(input);
    input.pathIds.push('mutated-input');
    put.pathIds.push('mutated-put');
    const got = (await st.get('a'))!;
    got.pathIds.push('mutated-get');
    if (kind === 'nse') {
      got.networkServiceNames.push('mutated');
      got.networkServiceLabels['contract-ns'].labels.app = 'mutated';
      got.expirationTime!.setTime(0);
    } else {
      got.payload = 'mutated';
    }
    const listed = await st.list();
    listed[0].name = 'mutated';
    assert.deepEqual(await st.get('a'), make(kind, 'a'));
    assert.deepEqual(await st.list(), [make(kind, 'a')]);
  }));
}

/** Watch order and fan-out for one kind. */
function watchCases(kind: Kind, withStore: WithStore): void {
  it(`${kind}: watch sees put and delete in order`, withStore(async ({ store }) => {
    const st = pick(kind, store);
    await st.put(make(kind, 'before'));
    const ac = new AbortController();
    const it = st.watch(ac.signal)[Symbol.asyncIterator]();
    try {
      await st.put(make(kind, 'a'));
      const a2 = changedA(kind, 'tcp://10.0.0.1:5001');
      await st.put(a2);
      await st.delete('a');
      await st.delete('before');
      const evs = await take(it, 4);
      assert.deepEqual(
        evs.map((e) => [e.type, e.item.name]),
        [['put', 'a'], ['put', 'a'], ['delete', 'a'], ['delete', 'before']],
      );
      assert.deepEqual(evs[1].item, a2);
    } finally {
      ac.abort();
    }
    assert.equal((await nextWithin(it, 'end after abort')).done, true, 'stream ends after abort');
  }));

  it(`${kind}: two watchers each see every change; event items are copies`, withStore(async ({ store }) => {
    const st = pick(kind, store);
    const ac = new AbortController();
    const w1 = st.watch(ac.signal)[Symbol.asyncIterator]();
    const w2 = st.watch(ac.signal)[Symbol.asyncIterator]();
    try {
      await st.put(make(kind, 'a'));
      const [e1] = await take(w1, 1);
      e1.item.pathIds.push('mutated');
      const [e2] = await take(w2, 1);
      assert.deepEqual(e2.item, make(kind, 'a'));
      assert.deepEqual(await st.get('a'), make(kind, 'a'));
    } finally {
      ac.abort();
    }
  }));
}

/** How a watch ends (abort, break, already aborted) and that ns and nse are apart. */
function lifecycleCases(withStore: WithStore): void {
  it('watch cancel (abort) ends the stream and leaves no listener', withStore(async ({ store, listeners }) => {
    const baseline = listeners?.() ?? 0;
    const ac = new AbortController();
    const it = store.nse.watch(ac.signal)[Symbol.asyncIterator]();
    const pending = nextWithin(it, 'end after abort');
    ac.abort();
    assert.equal((await pending).done, true);
    assert.equal(getEventListeners(ac.signal, 'abort').length, 0);
    if (listeners) assert.equal(listeners(), baseline);
    await store.nse.put(nse('after-cancel'));
    assert.equal((await nextWithin(it, 'stay ended')).done, true);
  }));

  it('watch ended by the consumer (break) releases the signal and the store', withStore(async ({ store, listeners }) => {
    const baseline = listeners?.() ?? 0;
    const parent = new AbortController(); // long-lived, never aborted
    const before = getEventListeners(parent.signal, 'abort').length;
    const it = store.ns.watch(parent.signal)[Symbol.asyncIterator]();
    await store.ns.put(ns('x'));
    const first = await nextWithin(it, 'deliver the put');
    assert.equal(first.done, false);
    assert.equal(first.value?.item.name, 'x');
    await it.return?.(); // what `break` in for-await does
    assert.equal(getEventListeners(parent.signal, 'abort').length, before);
    if (listeners) assert.equal(listeners(), baseline);
  }));

  it('watch on an already-aborted signal ends at once', withStore(async ({ store, listeners }) => {
    const baseline = listeners?.() ?? 0;
    const it = store.ns.watch(AbortSignal.abort())[Symbol.asyncIterator]();
    assert.equal((await nextWithin(it, 'end at once')).done, true);
    if (listeners) assert.equal(listeners(), baseline);
  }));

  it('ns and nse are separate namespaces', withStore(async ({ store }) => {
    await store.ns.put(ns('same'));
    await store.nse.put(nse('same'));
    await store.ns.delete('same');
    assert.deepEqual(await store.nse.get('same'), nse('same'));
    assert.equal(await store.ns.get('same'), undefined);
  }));
}

/** Registers the contract tests for the store built by `makeStore` (a fresh, empty store per test). */
export function storeContract(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  const withStore: WithStore = (fn) => async () => {
    const s = await makeStore();
    try {
      await fn(s);
    } finally {
      await s.cleanup();
    }
  };

  describe(`store contract: ${name}`, () => {
    for (const kind of ['ns', 'nse'] as const) {
      crudCases(kind, withStore);
      watchCases(kind, withStore);
    }
    lifecycleCases(withStore);
  });
}
