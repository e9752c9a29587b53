import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClientError, Status, createChannel, createClient, type Channel } from 'nice-grpc';
import { HealthCheckResponse_ServingStatus, HealthDefinition } from '../../api/gen/health.js';
import {
  NetworkServiceEndpointRegistryDefinition,
  NetworkServiceRegistryDefinition,
  type NetworkServiceEndpointResponse,
} from '../../api/gen/registry.js';
import { ConfigError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { memoryRegistryStore, type MemoryRegistryStore } from '../../registry/memory/index.js';
import { registryConfig } from './config.js';
import { startRegistry, type RunningRegistry } from './index.js';

const EVENT_TIMEOUT_MS = 5000;

/** Next item of a stream, or a failure (not a hang) after EVENT_TIMEOUT_MS. */
async function nextOf<T>(it: AsyncIterator<T>): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([
      it.next(),
      new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error('no event within timeout')), EVENT_TIMEOUT_MS))),
    ]);
    assert.equal(r.done, false, 'stream ended early');
    return r.value as T;
  } finally {
    clearTimeout(t);
  }
}

/** Polls `cond` (server-side effects of a client cancel arrive asynchronously). */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + EVENT_TIMEOUT_MS;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('registry config', () => {
  it('defaults follow upstream cmd-registry-memory (expire period 1m, honoured)', () => {
    const c = registryConfig.parse({ NSM_INSECURE: 'true' });
    assert.deepEqual(c.listenOn, ['unix:///listen.on.socket']);
    assert.equal(c.expirePeriod, 60_000);
    assert.equal(c.maxTokenLifetime, 600_000);
    assert.equal(c.logLevel, 'info');
    assert.equal(c.proxyRegistryUrl, '');
  });

  it('accepts tcp, unix and comma lists', () => {
    assert.deepEqual(registryConfig.parse({ NSM_INSECURE: 'true', NSM_LISTEN_ON: 'tcp://:5002,unix:///tmp/r.sock' }).listenOn, ['tcp://:5002', 'unix:///tmp/r.sock']);
    assert.equal(registryConfig.parse({ NSM_INSECURE: 'true', NSM_PROXY_REGISTRY_URL: 'nsmgr-proxy:5004' }).proxyRegistryUrl, 'tcp://nsmgr-proxy:5004');
  });

  for (const [name, value] of [
    ['NSM_LISTEN_ON', 'http://x'],
    ['NSM_LISTEN_ON', ','],
    ['NSM_EXPIRE_PERIOD', '10'],
    ['NSM_EXPIRE_PERIOD', '0'],
    // issue 12: beyond Node's timer range every registration expired at once; empty and dir-less values were accepted
    ['NSM_EXPIRE_PERIOD', '600h'],
    ['NSM_LISTEN_ON', ''],
    ['NSM_LISTEN_ON', 'unix:///nonexistent-nsm-dir/x.sock'],
    ['NSM_LOG_LEVEL', 'loud'],
  ]) {
    it(`${name}=${value} is a ConfigError naming ${name}`, () => {
      assert.throws(
        () => registryConfig.parse({ NSM_INSECURE: 'true', [name]: value }),
        (err: unknown) => err instanceof ConfigError && err.variable === name && err.message.includes(name),
      );
    });
  }
});

describe('registry component over real gRPC (unix socket)', () => {
  let dir: string;
  let sock: string;
  let store: MemoryRegistryStore;
  let registry: RunningRegistry;
  let channel: Channel;
  let nseClient: ReturnType<typeof createClient<typeof NetworkServiceEndpointRegistryDefinition>>;
  let nsClient: ReturnType<typeof createClient<typeof NetworkServiceRegistryDefinition>>;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsm-reg-'));
    sock = join(dir, 'registry.sock');
    store = memoryRegistryStore();
    const config = registryConfig.parse({ NSM_INSECURE: 'true', NSM_LISTEN_ON: `unix://${sock}`, NSM_EXPIRE_PERIOD: '300ms' });
    registry = await startRegistry(config, { log: silentLogger, store });
    channel = createChannel(`unix://${sock}`);
    nseClient = createClient(NetworkServiceEndpointRegistryDefinition, channel);
    nsClient = createClient(NetworkServiceRegistryDefinition, channel);
  });

  after(async () => {
    channel?.close();
    await registry?.stop();
    await store?.close();
    assert.equal(existsSync(sock), false, 'socket removed on stop');
    rmSync(dir, { recursive: true, force: true });
  });

  const nse = (name: string) => ({
    name,
    networkServiceNames: ['svc'],
    networkServiceLabels: { svc: { labels: { app: 'test' } } },
    url: 'tcp://127.0.0.1:5999',
  });

  it('listens on the configured address', () => {
    assert.deepEqual(registry.addresses, [`unix://${sock}`]);
  });

  it('health answers SERVING for the server and both registry services', async () => {
    const health = createClient(HealthDefinition, channel);
    for (const service of ['', 'registry.NetworkServiceRegistry', 'registry.NetworkServiceEndpointRegistry']) {
      assert.equal((await health.check({ service })).status, HealthCheckResponse_ServingStatus.SERVING, service);
    }
  });

  it('NSE Register / Find / Unregister', async () => {
    const resp = await nseClient.register(nse('nse-a'));
    assert.equal(resp.name, 'nse-a');
    assert.ok(resp.expirationTime && resp.expirationTime.getTime() > Date.now(), 'expiration set');
    assert.ok(resp.initialRegistrationTime, 'initial registration time set');
    const found: NetworkServiceEndpointResponse[] = [];
    for await (const r of nseClient.find({ networkServiceEndpoint: { name: 'nse-a' } })) found.push(r);
    assert.equal(found.length, 1);
    assert.equal(found[0].deleted, false);
    assert.deepEqual(found[0].networkServiceEndpoint?.networkServiceLabels, { svc: { labels: { app: 'test' } } });
    await nseClient.unregister({ name: 'nse-a' });
    const after: NetworkServiceEndpointResponse[] = [];
    for await (const r of nseClient.find({ networkServiceEndpoint: { name: 'nse-a' } })) after.push(r);
    assert.equal(after.length, 0);
  });

  it('NS Register fills payload IP; Find; Unregister', async () => {
    assert.equal((await nsClient.register({ name: 'my-ns' })).payload, 'IP');
    const found = [];
    for await (const r of nsClient.find({ networkService: { name: 'my-ns' } })) found.push(r);
    assert.deepEqual(found.map((r) => [r.networkService?.name, r.networkService?.payload, r.deleted]), [['my-ns', 'IP', false]]);
    await nsClient.unregister({ name: 'my-ns' });
    assert.deepEqual(await store.ns.list(), []);
  });

  it('Find with watch streams put, unregister (deleted) and expiry (deleted)', async () => {
    const ac = new AbortController();
    const watch = nseClient.find({ networkServiceEndpoint: { networkServiceNames: ['svc'] }, watch: true }, { signal: ac.signal })[Symbol.asyncIterator]();
    try {
      // nice-grpc starts the call at the first next()
      const first = nextOf(watch);
      await until(() => store.nse.watcherCount === 1, 'watch subscription');
      await nseClient.register(nse('nse-w'));
      let ev = await first;
      assert.deepEqual([ev.networkServiceEndpoint?.name, ev.deleted], ['nse-w', false]);
      await nseClient.unregister({ name: 'nse-w' });
      ev = await nextOf(watch);
      assert.deepEqual([ev.networkServiceEndpoint?.name, ev.deleted], ['nse-w', true]);

      const registeredAt = Date.now();
      await nseClient.register(nse('nse-exp'));
      ev = await nextOf(watch);
      assert.deepEqual([ev.networkServiceEndpoint?.name, ev.deleted], ['nse-exp', false]);
      ev = await nextOf(watch); // NSM_EXPIRE_PERIOD=300ms
      assert.deepEqual([ev.networkServiceEndpoint?.name, ev.deleted], ['nse-exp', true]);
      assert.ok(Date.now() - registeredAt >= 250, 'not removed before its expiry');
      assert.equal(await store.nse.get('nse-exp'), undefined);
    } finally {
      ac.abort();
    }
    await until(() => store.nse.watcherCount === 0, 'watch listener released after cancel');
  });

  it('bad input is INVALID_ARGUMENT and leaves the store unchanged', async () => {
    const before = await store.nse.list();
    for (const bad of [{ name: '', url: 'tcp://127.0.0.1:1' }, { name: 'x', url: 'http://x' }, { name: 'x', url: '' }]) {
      await assert.rejects(nseClient.register(bad), (err: unknown) => err instanceof ClientError && err.code === Status.INVALID_ARGUMENT);
    }
    await assert.rejects(nsClient.register({ name: '' }), (err: unknown) => err instanceof ClientError && err.code === Status.INVALID_ARGUMENT);
    assert.deepEqual(await store.nse.list(), before);
    assert.deepEqual(await store.ns.list(), []);
  });

  it('cancelling a Find watch leaves no listener', async () => {
    for (let i = 0; i < 3; i++) {
      const ac = new AbortController();
      const watch = nsClient.find({ watch: true }, { signal: ac.signal })[Symbol.asyncIterator]();
      const pending = watch.next().catch(() => ({ done: true }));
      await until(() => store.ns.watcherCount === 1, 'watch subscription');
      ac.abort();
      await pending;
      await until(() => store.ns.watcherCount === 0, 'listener released');
    }
  });

  it('stop ends open watches promptly', async () => {
    const dir2 = mkdtempSync(join(tmpdir(), 'nsm-reg-'));
    const sock2 = join(dir2, 'r.sock');
    const reg2 = await startRegistry(registryConfig.parse({ NSM_INSECURE: 'true', NSM_LISTEN_ON: `unix://${sock2}` }), { log: silentLogger });
    const ch = createChannel(`unix://${sock2}`);
    try {
      const client = createClient(NetworkServiceEndpointRegistryDefinition, ch);
      const watch = client.find({ watch: true })[Symbol.asyncIterator]();
      const pending = watch.next().then(
        (r) => r.done,
        () => true,
      );
      await client.register(nse('x')); // ensures the watch call reached the server
      const t0 = Date.now();
      await reg2.stop();
      assert.ok(Date.now() - t0 < 1500, 'stop did not wait for the shutdown timeout');
      await pending;
    } finally {
      ch.close();
      await reg2.stop();
      rmSync(dir2, { recursive: true, force: true });
    }
  });
});
