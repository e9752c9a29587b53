import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../core/log.js';
import { TestWorkloadApi, svidResponse } from '../testing/workload-api.js';
import { testX509Source, makeTestSvid } from '../testing/svid.js';
import { createCa } from './ca.js';
import { INSECURE_WARNING, identityFromSource, startIdentity, type Identity } from './identity.js';
import { INSECURE } from './tls.js';
import { decodeToken, verifyToken } from './token.js';

const TD = 'example.org';
const ID = `spiffe://${TD}/ns/test/nsmgr`;

function logSink(): { log: Logger; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { log: createLogger('test', 'debug', sink), lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function workloadApi(t: import('node:test').TestContext): Promise<TestWorkloadApi> {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-id-'));
  const api = new TestWorkloadApi(join(dir, 'agent.sock'));
  await api.start();
  t.after(async () => {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return api;
}

test('identity: NSM_INSECURE → plaintext, HS256 tokens, a warning, nothing to wait for', async () => {
  const { log, lines } = logSink();
  const id = await startIdentity({ insecure: true, log, maxTokenLifetime: 60_000, insecureSubject: 'nsm-ts/nsc/a' });
  assert.equal(id.security, INSECURE);
  assert.equal(id.insecure, true);
  assert.equal(id.source, undefined);
  assert.deepEqual(id.describe(), { insecure: true });
  const tok = await id.tokens.generate();
  const decoded = decodeToken(tok.token);
  assert.equal(decoded.header.alg, 'HS256');
  assert.equal(decoded.payload.sub, 'nsm-ts/nsc/a');
  assert.ok(lines().some((l) => l.level === 40 && l.msg === INSECURE_WARNING && l.security === 'insecure'), 'warns at start');
  id.stop();
});

test('identity: no endpoint and not insecure is refused naming SPIFFE_ENDPOINT_SOCKET', async () => {
  await assert.rejects(
    startIdentity({ insecure: false, log: logSink().log }),
    (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === 'SPIFFE_ENDPOINT_SOCKET',
  );
  await assert.rejects(
    startIdentity({ insecure: false, endpoint: 'tcp://127.0.0.1:1', log: logSink().log }),
    (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === 'SPIFFE_ENDPOINT_SOCKET',
  );
});

test('identity: waits for the first SVID, logging what it waits for; then mTLS and ES256 tokens signed with the SVID key', async (t) => {
  const api = await workloadApi(t);
  const ca = createCa({ trustDomain: TD });
  const { log, lines } = logSink();
  let settled: Identity | undefined;
  const pending = startIdentity({ insecure: false, endpoint: `unix://${api.path}`, log, maxTokenLifetime: 60_000, waitLogEveryMs: 50 }).then((id) => (settled = id));
  await until(() => lines().some((l) => l.msg === 'waiting for the first X.509-SVID from the SPIFFE Workload API' && l.endpoint === `unix://${api.path}`), 'the wait log');
  await until(() => lines().filter((l) => l.msg === 'waiting for the first X.509-SVID from the SPIFFE Workload API').length >= 2, 'a second wait log');
  assert.equal(settled, undefined, 'not ready before an SVID');

  const svid = ca.issue({ spiffeId: ID, ttlMs: 120_000 });
  api.push(svidResponse(svid, ca));
  const id = await pending;
  t.after(() => id.stop());
  assert.equal(id.insecure, false);
  assert.equal(id.security.kind, 'mtls');
  assert.deepEqual(id.describe(), { insecure: false, spiffeId: ID, notAfter: svid.notAfter.toISOString() });
  assert.ok(lines().some((l) => l.level === 30 && l.msg === `identity: ${ID} until ${svid.notAfter.toISOString()}`), 'logs the identity at start');

  const tok = await id.tokens.generate({ audience: `spiffe://${TD}/ns/test/nsc` });
  const v = verifyToken(tok.token, svid.leaf);
  assert.equal(v.header.alg, 'ES256');
  assert.equal(v.payload.sub, ID);
  assert.deepEqual(v.payload.aud, [`spiffe://${TD}/ns/test/nsc`]);
  assert.ok(tok.expires.getTime() <= Date.now() + 60_000);

  // rotation: logged at info, describe() and the next token follow the new SVID
  const next = ca.issue({ spiffeId: ID, ttlMs: 240_000 });
  api.push(svidResponse(next, ca));
  await until(() => id.describe().notAfter === next.notAfter.toISOString(), 'the rotation');
  assert.ok(lines().some((l) => l.level === 30 && l.msg === `identity rotated: ${ID} until ${next.notAfter.toISOString()}`), 'logs the rotation');
  const after = await id.tokens.generate();
  assert.doesNotThrow(() => verifyToken(after.token, next.leaf));
  assert.throws(() => verifyToken(after.token, svid.leaf), (err: Error & { problem?: string }) => err.problem === 'bad-signature');
});

test('identity: the start signal ends the wait (SIGTERM during start-up) with CancelledError and closes the stream', async (t) => {
  const api = await workloadApi(t);
  const ac = new AbortController();
  const pending = startIdentity({ insecure: false, endpoint: `unix://${api.path}`, log: logSink().log, signal: ac.signal });
  await until(() => api.calls > 0, 'the FetchX509SVID call');
  ac.abort();
  await assert.rejects(pending, (err: Error) => err.name === 'CancelledError');
  // already aborted: refused before any call
  const calls = api.calls;
  await assert.rejects(startIdentity({ insecure: false, endpoint: `unix://${api.path}`, log: logSink().log, signal: ac.signal }), (err: Error) => err.name === 'CancelledError');
  assert.equal(api.calls, calls);
});

test('identity: identityFromSource leaves the source to its owner unless told; stop() stops the rotation log', () => {
  const source = testX509Source(makeTestSvid(ID));
  const { log, lines } = logSink();
  const id = identityFromSource(source, { log });
  assert.equal(id.source, source);
  id.stop();
  id.stop();
  source.rotate(makeTestSvid(ID));
  assert.equal(lines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('identity rotated')).length, 0, 'no rotation log after stop');
  assert.equal(source.current().svid.spiffeId, ID, 'the source is still usable');
});
