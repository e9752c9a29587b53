import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { X509SVIDResponse } from '../api/gen/workload.js';
import { createLogger, type Logger } from '../core/log.js';
import { TestWorkloadApi, svidResponse as response } from '../testing/workload-api.js';
import { createCa } from './ca.js';
import type { X509Material } from './svid.js';
import {
  ENDPOINT_ENV, linearBackoff, materialFromResponse, parseWorkloadEndpoint, workloadApiSource,
  type WorkloadApiSource,
} from './workload-client.js';
import { svidToDer } from './x509.js';

const TD = 'example.org';

/** A pino logger whose JSON lines the test reads back. */
function logSink(): { log: Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { out.push(...chunk.toString().split('\n').filter(Boolean)); cb(); } });
  return { log: createLogger('test', 'debug', sink), lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function setup(t: import('node:test').TestContext, opts: { start?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-wl-'));
  const ca = createCa({ trustDomain: TD });
  const api = new TestWorkloadApi(join(dir, 'agent.sock'));
  if (opts.start !== false) await api.start();
  const { log, lines } = logSink();
  const sources: WorkloadApiSource[] = [];
  const open = (over: { waitLogEveryMs?: number } = {}) => {
    const s = workloadApiSource({ endpoint: `unix://${api.path}`, log, backoffMs: () => 20, ...over });
    sources.push(s);
    return s;
  };
  t.after(async () => {
    for (const s of sources) s.close();
    await Promise.all(sources.map((s) => s.stopped));
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { ca, api, open, lines };
}

/** Resolves with the next material a listener sees. */
function nextUpdate(source: WorkloadApiSource): Promise<X509Material> {
  return new Promise((resolve) => {
    const off = source.onUpdate((m) => {
      off();
      resolve(m);
    });
  });
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('workload api: SPIFFE_ENDPOINT_SOCKET values', () => {
  assert.equal(parseWorkloadEndpoint('unix:///run/spire/sockets/agent.sock'), 'unix:///run/spire/sockets/agent.sock');
  assert.equal(parseWorkloadEndpoint('unix:/run/spire/agent.sock'), 'unix:///run/spire/agent.sock');
  assert.equal(parseWorkloadEndpoint('unix:///tmp/a%20b.sock'), 'unix:///tmp/a b.sock');
  const bad = [
    '',
    'tcp://127.0.0.1:8081',
    'http:///run/agent.sock',
    '/run/agent.sock',
    'unix:agent.sock',
    'unix://host/run/agent.sock',
    'unix://user@/run/agent.sock',
    'unix:///run/agent.sock?x=1',
    'unix:///run/agent.sock#frag',
    'unix:',
    `unix:///${'a'.repeat(120)}`,
    'not a uri',
  ];
  for (const v of bad) {
    assert.throws(() => parseWorkloadEndpoint(v), (err: Error & { field?: string; value?: unknown }) => err.name === 'InvalidArgumentError' && err.field === ENDPOINT_ENV && err.value === v, v);
    assert.throws(() => workloadApiSource({ endpoint: v, log: logSink().log }), { name: 'InvalidArgumentError' }, v);
  }
  assert.throws(() => workloadApiSource({ endpoint: 'unix:///x', log: logSink().log, waitLogEveryMs: 60_000 }), { name: 'InvalidArgumentError', field: 'waitLogEveryMs' } as object);
});

test('workload api: backoff is linear 1 s … 30 s like go-spiffe', () => {
  assert.deepEqual([1, 2, 3, 29, 30, 31, 1000].map((n) => linearBackoff(n)), [1000, 2000, 3000, 29_000, 30_000, 30_000, 30_000]);
});

test('workload api: the first SVID arrives over the stream with its bundles; the header is sent', async (t) => {
  const { ca, api, open } = await setup(t);
  const fed = createCa({ trustDomain: 'fed.org' });
  const svid = ca.issue({ spiffeId: `spiffe://${TD}/ns/default/sa/nsc` });
  api.push(response(svid, ca, { 'spiffe://fed.org': fed.root.raw }));
  const source = open();
  assert.throws(() => source.current(), { name: 'UnavailableError' });
  const m = await source.ready(AbortSignal.timeout(5000));
  assert.equal(m.svid.spiffeId, svid.spiffeId);
  assert.equal(m.svid.certChainPem, svid.certChainPem);
  assert.ok(m.svid.leaf.checkPrivateKey(m.svid.privateKey));
  assert.deepEqual([...m.bundles.entries()], [[TD, ca.rootPem], ['fed.org', fed.rootPem]]);
  assert.equal(source.current(), m);
  assert.equal(await source.ready(), m, 'ready resolves at once once there is material');
  assert.deepEqual(api.headers, ['true']);
});

test('workload api: a rotation reaches listeners after current() has it; an identical push is no update', async (t) => {
  const { ca, api, open } = await setup(t);
  api.push(response(ca.issue({ spiffeId: `spiffe://${TD}/a` }), ca));
  const source = open();
  const first = await source.ready();
  const seen: X509Material[] = [];
  source.onUpdate((m) => {
    assert.equal(source.current(), m, 'current() returns the new material inside the listener');
    seen.push(m);
  });
  const rotated = ca.issue({ spiffeId: `spiffe://${TD}/a` });
  const update = nextUpdate(source);
  api.push(response(rotated, ca));
  const m = await update;
  assert.notEqual(m, first);
  assert.equal(m.svid.certChainPem, rotated.certChainPem);
  assert.equal(source.current().svid.leaf.serialNumber, rotated.leaf.serialNumber);
  api.push(response(rotated, ca)); // same content, new message
  const third = ca.issue({ spiffeId: `spiffe://${TD}/a` });
  const again = nextUpdate(source);
  api.push(response(third, ca));
  assert.equal((await again).svid.leaf.serialNumber, third.leaf.serialNumber);
  assert.deepEqual(seen.map((s) => s.svid.leaf.serialNumber), [rotated.leaf.serialNumber, third.leaf.serialNumber]);
});

test('workload api: a malformed response is logged and dropped; the good SVID stays', async (t) => {
  const { ca, api, open, lines } = await setup(t);
  const good = ca.issue({ spiffeId: `spiffe://${TD}/a` });
  api.push(response(good, ca));
  const source = open();
  await source.ready();
  let updates = 0;
  source.onUpdate(() => updates++);
  const other = ca.issue({ spiffeId: `spiffe://${TD}/b` });
  const malformed: Array<[string, X509SVIDResponse]> = [
    ['no SVID', { svids: [], crl: [], federatedBundles: {} }],
    ['key of another SVID', { ...response(good, ca), svids: [{ ...response(good, ca).svids[0]!, x509SvidKey: svidToDer(other).key }] }],
    ['garbage certificate', { ...response(good, ca), svids: [{ ...response(good, ca).svids[0]!, x509Svid: Buffer.from('garbage') }] }],
    ['spiffe_id differs from the leaf', { ...response(good, ca), svids: [{ ...response(good, ca).svids[0]!, spiffeId: `spiffe://${TD}/b` }] }],
    ['no bundle', { ...response(good, ca), svids: [{ ...response(good, ca).svids[0]!, bundle: Buffer.alloc(0) }] }],
    ['bad federated key', response(good, ca, { 'spiffe://Bad': ca.root.raw })],
  ];
  for (const [what, resp] of malformed) {
    assert.throws(() => materialFromResponse(resp), { name: 'InvalidArgumentError' }, what);
    const before = lines().length;
    api.push(resp);
    await until(() => lines().slice(before).some((l) => l.level === 50 && String(l.msg).includes('malformed')), `the error log for "${what}"`);
    assert.equal(source.current().svid.certChainPem, good.certChainPem, what);
  }
  assert.equal(updates, 0);
  const next = ca.issue({ spiffeId: `spiffe://${TD}/a` });
  const update = nextUpdate(source);
  api.push(response(next, ca));
  assert.equal((await update).svid.certChainPem, next.certChainPem, 'a good response after bad ones is taken');
});

test('workload api: the client reconnects after a server restart and sees what the new server serves', async (t) => {
  const { ca, api, open, lines } = await setup(t);
  api.push(response(ca.issue({ spiffeId: `spiffe://${TD}/a` }), ca));
  const source = open();
  await source.ready();
  await api.stop();
  await until(() => lines().some((l) => l.level === 40 && String(l.msg).includes('stream broke')), 'the broken-stream warning');
  assert.equal(source.current().svid.spiffeId, `spiffe://${TD}/a`, 'the SVID stays while the agent is away');
  const after = ca.issue({ spiffeId: `spiffe://${TD}/a` });
  api.push(response(after, ca));
  const update = nextUpdate(source);
  await api.start();
  assert.equal((await update).svid.leaf.serialNumber, after.leaf.serialNumber);
  assert.ok(api.calls >= 2);
});

test('workload api: with no server at start, ready waits and logs what it waits for, then resolves', async (t) => {
  const { ca, api, open, lines } = await setup(t, { start: false });
  const source = open({ waitLogEveryMs: 50 });
  let settled = false;
  const ready = source.ready().finally(() => (settled = true));
  await until(() => lines().filter((l) => String(l.msg).includes('waiting for the first')).length >= 2, 'two waiting logs');
  assert.equal(settled, false);
  const waiting = lines().filter((l) => String(l.msg).includes('waiting for the first'));
  assert.equal(waiting[0]!.endpoint, `unix://${api.path}`);
  assert.match(String(waiting.at(-1)!.lastError), /UNAVAILABLE|No connection|ENOENT|connect/i);
  const svid = ca.issue({ spiffeId: `spiffe://${TD}/late` });
  api.push(response(svid, ca));
  await api.start();
  assert.equal((await ready).svid.spiffeId, svid.spiffeId);
  const n = lines().filter((l) => String(l.msg).includes('waiting for the first')).length;
  await new Promise((r) => setTimeout(r, 150));
  assert.equal(lines().filter((l) => String(l.msg).includes('waiting for the first')).length, n, 'no waiting logs once the SVID is there');
});

test('workload api: PermissionDenied keeps the client retrying and names the error in its logs', async (t) => {
  const { ca, api, open, lines } = await setup(t);
  api.deny = true;
  api.push(response(ca.issue({ spiffeId: `spiffe://${TD}/a` }), ca));
  const source = open({ waitLogEveryMs: 50 });
  await until(() => api.calls >= 3, 'three attempts');
  await until(() => lines().some((l) => String(l.msg).includes('waiting for the first') && /PERMISSION_DENIED/.test(String(l.lastError))), 'a waiting log naming PERMISSION_DENIED');
  assert.throws(() => source.current(), (err: Error) => err.name === 'UnavailableError' && /PERMISSION_DENIED/.test(err.message));
  api.deny = false;
  assert.equal((await source.ready()).svid.spiffeId, `spiffe://${TD}/a`);
});

test('workload api: ready honours its signal; close rejects waiters, stops the loop and the logs', async (t) => {
  const { open, lines } = await setup(t, { start: false });
  const source = open({ waitLogEveryMs: 20 });
  const ac = new AbortController();
  const aborted = source.ready(ac.signal);
  ac.abort();
  await assert.rejects(aborted, { name: 'CancelledError' });
  const pending = source.ready();
  source.close();
  await assert.rejects(pending, { name: 'CancelledError' });
  await source.stopped;
  await assert.rejects(source.ready(), { name: 'CancelledError' });
  const n = lines().length;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(lines().length, n, 'nothing runs after close');
  const parent = new AbortController();
  const child = workloadApiSource({ endpoint: 'unix:///nonexistent/agent.sock', log: logSink().log, signal: parent.signal, backoffMs: () => 10 });
  const waiting = child.ready();
  parent.abort();
  await assert.rejects(waiting, { name: 'CancelledError' });
  await child.stopped;
});
