import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { NetworkService as NsCodec, NetworkServiceEndpoint as NseCodec } from '../../api/gen/registry.js';
import { startTestApiServer, type TestApiServer } from '../../testing/fake-apiserver.js';
import { storeContract } from '../store-contract.js';
import type { StoreEvent } from '../store.js';
import { k8sRegistryStore, type K8sRegistryStore } from './index.js';

const SERVER = 'test API server, not a real cluster';

async function withServer(fn: (api: TestApiServer, store: K8sRegistryStore) => Promise<void>, namespace = 'nsm-system'): Promise<void> {
  const api = await startTestApiServer();
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  const store = k8sRegistryStore(kc, { namespace, rewatchMinMs: 10, rewatchMaxMs: 50 });
  try {
    await fn(api, store);
  } finally {
    await store.close();
    await api.stop();
  }
}

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function next<T>(it: AsyncIterator<StoreEvent<T>>, timeoutMs = 5000): Promise<StoreEvent<T>> {
  let t: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([it.next(), new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error('no watch event')), timeoutMs)))]);
    assert.equal(r.done, false);
    return r.value as StoreEvent<T>;
  } finally {
    clearTimeout(t);
  }
}

storeContract(`k8s (${SERVER})`, async () => {
  const api = await startTestApiServer();
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  const store = k8sRegistryStore(kc, { namespace: 'nsm-system' });
  return {
    store,
    listeners: () => store.ns.watcherCount + store.nse.watcherCount,
    cleanup: async () => {
      await store.close();
      await api.stop();
    },
  };
});

describe(`k8s registry store specifics (${SERVER})`, () => {
  it('stores snake_case CRs in its namespace, named after the item', () =>
    withServer(async (api, store) => {
      await store.nse.put(NseCodec.fromPartial({ name: 'nse-1', networkServiceNames: ['svc'], url: 'tcp://10.0.0.1:5003', expirationTime: new Date(1_700_000_000_250) }));
      const [cr] = api.objects('networkserviceendpoints');
      assert.equal(cr.apiVersion, 'networkservicemesh.io/v1');
      assert.equal(cr.kind, 'NetworkServiceEndpoint');
      assert.equal(cr.metadata.name, 'nse-1');
      assert.equal(cr.metadata.namespace, 'nsm-system');
      assert.deepEqual(cr.spec, { name: 'nse-1', network_service_names: ['svc'], url: 'tcp://10.0.0.1:5003', expiration_time: { seconds: 1_700_000_000, nanos: 250_000_000 } });
    }));

  it('finds, lists and deletes items created in other namespaces; name falls back to metadata.name', () =>
    withServer(async (api, store) => {
      const kc = new KubeConfig();
      kc.loadFromString(api.kubeconfig());
      const other = k8sRegistryStore(kc, { namespace: 'team-a' });
      try {
        await other.ns.put(NsCodec.fromPartial({ name: 'elsewhere', payload: 'IP' }));
      } finally {
        await other.close();
      }
      assert.deepEqual(await store.ns.get('elsewhere'), NsCodec.fromPartial({ name: 'elsewhere', payload: 'IP' }));
      assert.deepEqual((await store.ns.list()).map((n) => n.name), ['elsewhere']);
      assert.deepEqual(await store.ns.delete('elsewhere'), NsCodec.fromPartial({ name: 'elsewhere', payload: 'IP' }));
      assert.deepEqual(api.objects('networkservices'), []);
    }));

  it('skips a CR whose spec does not convert, and rejects names Kubernetes would refuse', () =>
    withServer(async (api, store) => {
      await store.ns.put(NsCodec.fromPartial({ name: 'good', payload: 'ETHERNET' }));
      const res = await fetch(`${api.url}/apis/networkservicemesh.io/v1/namespaces/default/networkservices`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ apiVersion: 'networkservicemesh.io/v1', kind: 'NetworkService', metadata: { name: 'bad' }, spec: { payload: 42 } }),
      });
      assert.equal(res.status, 201);
      assert.deepEqual((await store.ns.list()).map((n) => n.name), ['good']);
      await assert.rejects(store.ns.get('bad'), { name: 'InvalidArgumentError' });
      await assert.rejects(store.ns.put(NsCodec.fromPartial({ name: 'Not_Valid' })), { name: 'InvalidArgumentError' });
    }));

  it('watch: stream end and 410 Gone are healed by re-list + re-watch; abort leaves no open watch', () =>
    withServer(async (api, store) => {
      const ac = new AbortController();
      const it = store.nse.watch(ac.signal)[Symbol.asyncIterator]();
      try {
        await store.nse.put(NseCodec.fromPartial({ name: 'a', url: 'tcp://1.1.1.1:1' }));
        assert.deepEqual([(await next(it)).type], ['put']);
        await until('watch open', () => api.openWatches === 1);

        // The server ends the stream; a change lands while nobody watches; the re-list reports it.
        api.closeWatches();
        await store.nse.put(NseCodec.fromPartial({ name: 'b', url: 'tcp://2.2.2.2:2' }));
        const eb = await next(it);
        assert.deepEqual([eb.type, eb.item.name], ['put', 'b']);
        await until('watch reopened', () => api.openWatches === 1);

        // The server expires the watch (ERROR 410) while another writer deletes 'a': the store re-lists
        // and re-watches; the delete arrives exactly once, through the re-list or through the new watch.
        const lists = () => api.requests.filter((r) => r.startsWith('GET /apis/networkservicemesh.io/v1/networkserviceendpoints') && !r.includes('watch=')).length;
        const listsBefore = lists();
        const kc = new KubeConfig();
        kc.loadFromString(api.kubeconfig());
        const writer = k8sRegistryStore(kc, { namespace: 'nsm-system' });
        try {
          api.expireWatches();
          await writer.nse.delete('a');
        } finally {
          await writer.close();
        }
        const ea = await next(it);
        assert.deepEqual([ea.type, ea.item.name], ['delete', 'a']);
        await until('re-list after 410', () => lists() > listsBefore + 0 && api.openWatches === 1);

        // Normal operation continues after the 410 recovery, with no duplicate events.
        await store.nse.put(NseCodec.fromPartial({ name: 'c', url: 'tcp://3.3.3.3:3' }));
        const ec = await next(it);
        assert.deepEqual([ec.type, ec.item.name], ['put', 'c']);
      } finally {
        ac.abort();
      }
      assert.equal((await it.next()).done, true);
      assert.equal(store.nse.watcherCount, 0);
      await until('no open watch on the server', () => api.openWatches === 0);
    }));

  it('a watch that falls behind by more than watchLimit ends with ResourceExhaustedError and closes its HTTP watch', async () => {
    const api = await startTestApiServer();
    const kc = new KubeConfig();
    kc.loadFromString(api.kubeconfig());
    const store = k8sRegistryStore(kc, { namespace: 'nsm-system', watchLimit: 2 });
    try {
      const ac = new AbortController();
      const it = store.ns.watch(ac.signal)[Symbol.asyncIterator]();
      for (const name of ['a', 'b', 'c']) await store.ns.put(NsCodec.fromPartial({ name, payload: 'IP' }));
      await until('the watch to overflow', () => store.ns.watcherCount === 0);
      await assert.rejects(it.next(), { name: 'ResourceExhaustedError' });
      assert.equal((await it.next()).done, true);
      await until('no open watch on the server', () => api.openWatches === 0);
      ac.abort();
    } finally {
      await store.close();
      await api.stop();
    }
  });

  it('put replaces an existing CR (409 AlreadyExists → replace with resourceVersion)', () =>
    withServer(async (api, store) => {
      await store.ns.put(NsCodec.fromPartial({ name: 'svc', payload: 'ETHERNET' }));
      const rv1 = api.objects('networkservices')[0].metadata.resourceVersion as string;
      await store.ns.put(NsCodec.fromPartial({ name: 'svc', payload: 'IP' }));
      const [cr] = api.objects('networkservices');
      assert.equal(cr.spec.payload, 'IP');
      assert.ok(Number(cr.metadata.resourceVersion) > Number(rv1));
      assert.ok(api.requests.some((r) => r.startsWith('PUT /apis/networkservicemesh.io/v1/namespaces/nsm-system/networkservices/svc')));
    }));

  it('maps an unreachable API server to UnavailableError', async () => {
    const api = await startTestApiServer();
    const kc = new KubeConfig();
    kc.loadFromString(api.kubeconfig());
    await api.stop();
    const store = k8sRegistryStore(kc);
    try {
      await assert.rejects(store.ns.list(), { name: 'UnavailableError' });
    } finally {
      await store.close();
    }
  });
});

describe(`the ${SERVER} itself`, () => {
  it('answers a watch from a compacted resourceVersion with a 410 ERROR event, and statuses for 404/409', async () => {
    const api = await startTestApiServer();
    try {
      const base = `${api.url}/apis/networkservicemesh.io/v1/namespaces/default/networkservices`;
      const body = JSON.stringify({ apiVersion: 'networkservicemesh.io/v1', kind: 'NetworkService', metadata: { name: 'x' }, spec: {} });
      const created = (await (await fetch(base, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body })).json()) as { metadata: { resourceVersion: string } };
      const dup = await fetch(base, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
      assert.equal(dup.status, 409);
      assert.equal(((await dup.json()) as { reason: string }).reason, 'AlreadyExists');
      const missing = await fetch(`${base}/nope`);
      assert.equal(missing.status, 404);
      assert.deepEqual(((await missing.json()) as { kind: string; code: number }).code, 404);
      api.compact();
      const old = Number(created.metadata.resourceVersion) - 1;
      const w = await fetch(`${base}?watch=true&resourceVersion=${old}`);
      const ev = JSON.parse((await w.text()).trim()) as { type: string; object: { code: number; reason: string } };
      assert.deepEqual([ev.type, ev.object.code, ev.object.reason], ['ERROR', 410, 'Expired']);
    } finally {
      await api.stop();
    }
  });
});
