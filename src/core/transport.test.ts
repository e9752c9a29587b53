import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createChannel, createClient, Status } from 'nice-grpc';
import { HealthCheckResponse_ServingStatus as S, HealthDefinition } from '../api/gen/health.js';
import { ChannelPool, createClient as pooledClient, serve } from './transport.js';
import { INSECURE } from '../security/tls.js';

async function healthServer(t: import('node:test').TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-transport-'));
  const server = await serve([`unix://${join(dir, 'h.sock')}`], [], INSECURE);
  const channel = createChannel(`unix://${join(dir, 'h.sock')}`);
  t.after(async () => {
    channel.close();
    await server.stop({ force: true });
    rmSync(dir, { recursive: true, force: true });
  });
  return { server, health: createClient(HealthDefinition, channel) };
}

test('health watch: current status first, then each change; stop ends the stream', async (t) => {
  const { server, health } = await healthServer(t);
  const it = health.watch({ service: '' })[Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.status, S.SERVING);
  server.setServing(false);
  assert.equal((await it.next()).value?.status, S.NOT_SERVING);
  server.setServing(true);
  assert.equal((await it.next()).value?.status, S.SERVING);
  await server.stop();
  assert.equal((await it.next()).done, true);
});

test('health watch: a burst of changes while the watcher is busy ends at the latest status', async (t) => {
  const { server, health } = await healthServer(t);
  const it = health.watch({ service: '' })[Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.status, S.SERVING);
  for (let i = 0; i < 100; i++) server.setServing(i % 2 === 1);
  server.setServing(false);
  assert.equal((await it.next()).value?.status, S.NOT_SERVING);
  await it.return?.();
});

test('health: an unknown service is NOT_FOUND on Check and SERVICE_UNKNOWN on Watch', async (t) => {
  const { health } = await healthServer(t);
  assert.equal((await health.check({ service: '' })).status, S.SERVING);
  await assert.rejects(health.check({ service: 'nope' }), (err: { code?: number }) => err.code === Status.NOT_FOUND);
  const ac = new AbortController();
  const it = health.watch({ service: 'nope' }, { signal: ac.signal })[Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.status, S.SERVICE_UNKNOWN);
  ac.abort();
  await assert.rejects(it.next(), (err: Error) => err.name === 'AbortError');
});

test('dial: a live peer is reached; a refused one fails at the dial timeout, not after the grace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-transport-'));
  const url = `unix://${join(dir, 'd.sock')}`;
  const server = await serve([url], [], INSECURE);
  const pool = new ChannelPool(INSECURE, { dialGrace: 10_000 });
  t.after(async () => {
    pool.close();
    await server.stop({ force: true });
    rmSync(dir, { recursive: true, force: true });
  });
  await pool.dial(url, 2000);
  const nobody = `unix://${join(dir, 'nobody.sock')}`;
  const t0 = Date.now();
  await assert.rejects(pool.dial(nobody, 300), (err: Error) => err.name === 'UnavailableError' && err.message.includes('TRANSIENT_FAILURE'));
  assert.ok(Date.now() - t0 < 3000, `refused peer reported in ${Date.now() - t0} ms`);
  const stop = new AbortController();
  const dialling = pool.dial(nobody, 60_000, stop.signal);
  stop.abort();
  await assert.rejects(dialling, { name: 'UnavailableError' });
});

test('serve: a unix socket whose directory is missing is refused naming the field and path; nothing is created', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-transport-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'no', 'such');
  await assert.rejects(serve([`unix://${join(missing, 'x.sock')}`], [], INSECURE, 'NSM_LISTEN_ON'), (err: Error & { field?: string }) => {
    assert.equal(err.name, 'InvalidArgumentError');
    assert.equal(err.field, 'NSM_LISTEN_ON');
    assert.match(err.message, new RegExp(`directory ${missing} does not exist`));
    return true;
  });
  assert.equal(existsSync(join(dir, 'no')), false, 'no directory was created');
});

test('createClient: one client per channel and service, reused by every call', () => {
  const a = createChannel('unix:///nonexistent/a.sock');
  const b = createChannel('unix:///nonexistent/b.sock');
  try {
    assert.equal(pooledClient(HealthDefinition, a), pooledClient(HealthDefinition, a));
    assert.notEqual(pooledClient(HealthDefinition, a), pooledClient(HealthDefinition, b));
  } finally {
    a.close();
    b.close();
  }
});
