/**
 * The real `kubectl` and the Kubernetes-backed registry store against the in-repo TEST API SERVER
 * (src/testing/fake-apiserver.ts), NOT A REAL CLUSTER: kubectl is an independent client, so what it
 * writes the store must read and what the store writes kubectl must show. kubectl runs as a child
 * process spawned asynchronously (a synchronous spawn would block the server in this process).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { NetworkServiceEndpoint as NseCodec } from '../src/api/gen/registry.js';
import { k8sRegistryStore } from '../src/registry/k8s/index.js';
import { startTestApiServer, type TestApiServer } from '../src/testing/fake-apiserver.js';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);
const NETSVC = join(ROOT, 'deployments/examples/heal/dataplane-interrupt/netsvc.yaml');

function kubectlAvailable(): Promise<boolean> {
  return new Promise((r) => execFile('kubectl', ['version', '--client'], (err) => r(!err)));
}

interface Env {
  api: TestApiServer;
  dir: string;
  kubectl(...args: string[]): Promise<string>;
}

async function setup(t: TestContext): Promise<Env | undefined> {
  if (!(await kubectlAvailable())) {
    t.skip('kubectl is not installed');
    return undefined;
  }
  const api = await startTestApiServer();
  const dir = mkdtempSync(join(tmpdir(), 'nsmt-kubectl-'));
  t.after(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, api.kubeconfig());
  const kubectl = (...args: string[]) =>
    new Promise<string>((res, rej) =>
      execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(dir, 'cache'), '--request-timeout', '20s', ...args], { timeout: 60_000 }, (err, stdout, stderr) =>
        err ? rej(new Error(`kubectl ${args.join(' ')} failed: ${stderr || err.message}`)) : res(stdout),
      ),
    );
  return { api, dir, kubectl };
}

function storeFor(api: TestApiServer, namespace = 'nsm-system') {
  const kc = new KubeConfig();
  kc.loadFromString(api.kubeconfig());
  return k8sRegistryStore(kc, { namespace });
}

describe('kubectl and the k8s registry store on the test API server, not a real cluster', () => {
  it('kubectl apply -f netsvc.yaml → the store finds dataplane-interrupt with payload ETHERNET', async (t) => {
    const env = await setup(t);
    if (!env) return;
    const out = await env.kubectl('apply', '-f', NETSVC);
    assert.match(out, /networkservice\.networkservicemesh\.io\/dataplane-interrupt created/);
    assert.match(await env.kubectl('apply', '-f', NETSVC), /unchanged/);

    const store = storeFor(env.api);
    t.after(() => store.close());
    const ns = await store.ns.get('dataplane-interrupt');
    assert.equal(ns?.name, 'dataplane-interrupt');
    assert.equal(ns?.payload, 'ETHERNET');
    assert.deepEqual(
      (await store.ns.list()).map((n) => [n.name, n.payload]),
      [['dataplane-interrupt', 'ETHERNET']],
    );
    assert.equal(await env.kubectl('get', 'netsvc', 'dataplane-interrupt', '-o', 'jsonpath={.spec.payload}'), 'ETHERNET');
  });

  it('an NSE registered through the store shows in kubectl get nse -A and get netsvc,nse -A', async (t) => {
    const env = await setup(t);
    if (!env) return;
    await env.kubectl('apply', '-f', NETSVC);
    const store = storeFor(env.api);
    t.after(() => store.close());
    await store.nse.put(
      NseCodec.fromPartial({
        name: 'nse-kernel-5b8f7-abcde',
        networkServiceNames: ['dataplane-interrupt'],
        networkServiceLabels: { 'dataplane-interrupt': { labels: { app: 'nse-kernel' } } },
        url: 'tcp://10.244.1.7:5003',
        expirationTime: new Date(Date.now() + 60_000),
      }),
    );

    const nses = await env.kubectl('get', 'nse', '-A');
    assert.match(nses, /^NAMESPACE\s+NAME\s+AGE$/m);
    assert.match(nses, /^nsm-system\s+nse-kernel-5b8f7-abcde\s+/m);

    const both = await env.kubectl('get', 'netsvc,nse', '-A');
    assert.match(both, /^default\s+(networkservice\.networkservicemesh\.io\/)?dataplane-interrupt\s+/m);
    assert.match(both, /^nsm-system\s+(networkserviceendpoint\.networkservicemesh\.io\/)?nse-kernel-5b8f7-abcde\s+/m);

    // The spec kubectl sees is upstream's snake_case JSON.
    const spec = JSON.parse(await env.kubectl('get', 'nse', 'nse-kernel-5b8f7-abcde', '-n', 'nsm-system', '-o', 'jsonpath={.spec}')) as Record<string, unknown>;
    assert.deepEqual(spec.network_service_names, ['dataplane-interrupt']);
    assert.deepEqual(spec.network_service_labels, { 'dataplane-interrupt': { labels: { app: 'nse-kernel' } } });
    assert.equal(typeof (spec.expiration_time as { seconds: unknown }).seconds, 'number');
  });

  it('kubectl-applied NSE YAML (upstream field names) is read by the store; kubectl delete reaches a store watch', async (t) => {
    const env = await setup(t);
    if (!env) return;
    const store = storeFor(env.api);
    t.after(() => store.close());
    const file = join(env.dir, 'nse.yaml');
    writeFileSync(
      file,
      [
        'apiVersion: networkservicemesh.io/v1',
        'kind: NetworkServiceEndpoint',
        'metadata:',
        '  name: icmp-responder-1',
        '  namespace: team-a',
        'spec:',
        '  network_service_names: [icmp-responder]',
        '  url: tcp://10.0.0.9:5003',
        '  expiration_time: {seconds: 1700000000, nanos: 500000000}',
        '',
      ].join('\n'),
    );
    await env.kubectl('apply', '-f', file);
    const nse = await store.nse.get('icmp-responder-1');
    assert.deepEqual(nse?.networkServiceNames, ['icmp-responder']);
    assert.equal(nse?.expirationTime?.getTime(), 1_700_000_000_500);

    const ac = new AbortController();
    t.after(() => ac.abort());
    const it = store.nse.watch(ac.signal)[Symbol.asyncIterator]();
    const first = it.next();
    // The subscription is in place once the store's own write (which waits for it) returns.
    await store.nse.put(NseCodec.fromPartial({ name: 'marker', url: 'tcp://10.0.0.1:1' }));
    assert.equal((await first).value?.item.name, 'marker');
    await env.kubectl('delete', 'nse', 'icmp-responder-1', '-n', 'team-a');
    const ev = await it.next();
    assert.deepEqual([ev.value?.type, ev.value?.item.name], ['delete', 'icmp-responder-1']);
    ac.abort();
    assert.equal((await it.next()).done, true);
  });
});
