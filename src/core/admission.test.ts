import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { Status, type ServerError } from 'nice-grpc';
import { Connection } from '../api/gen/connection.js';
import type { NetworkServiceImplementation } from '../api/gen/networkservice.js';
import { Admission, admitNetworkService, DeadlineExceededError, entering, MAX_CONCURRENCY, networkServiceAdmission } from './admission.js';
import { FakeClock } from './clock.js';
import { createLogger } from './log.js';

/** A logger that keeps its messages. */
function recordingLog() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('test', 'debug', sink), msgs: () => lines.map((l) => l.msg as string), lines };
}

/** A job that runs until `finish()` is called, recording that it started. */
function jobs() {
  const started: number[] = [];
  const finishers = new Map<number, () => void>();
  const job = (i: number) => () =>
    new Promise<number>((resolve) => {
      started.push(i);
      finishers.set(i, () => resolve(i));
    });
  return { started, job, finish: (i: number) => finishers.get(i)!() };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('Admission', () => {
  it('runs at most `limit` at once and the rest in arrival order', async () => {
    const { log, msgs } = recordingLog();
    const a = new Admission({ name: 'test', log }, { limit: 2, queueLimit: 10 });
    const j = jobs();
    const signal = new AbortController().signal;
    const runs = [1, 2, 3, 4, 5].map((i) => a.run(j.job(i), { signal }));
    await tick();
    assert.deepEqual(j.started, [1, 2]);
    assert.deepEqual(a.stats, { running: 2, queued: 3 });
    j.finish(2);
    await tick();
    assert.deepEqual(j.started, [1, 2, 3], 'the freed slot goes to the oldest waiter');
    j.finish(1);
    j.finish(3);
    await tick();
    // a newcomer while others wait queues behind them
    const late = a.run(j.job(6), { signal });
    await tick();
    assert.deepEqual(j.started, [1, 2, 3, 4, 5]);
    j.finish(4);
    j.finish(5);
    await tick();
    j.finish(6);
    assert.deepEqual(await Promise.all([...runs, late]), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(a.stats, { running: 0, queued: 0 });
    // two overload episodes (the queue emptied before the late call came): two lines each, none per call
    assert.deepEqual(msgs(), ['test: limit reached; queueing', 'test: queue drained', 'test: limit reached; queueing', 'test: queue drained']);
  });

  it('never starts a waiter whose caller went away, and says so with CancelledError', async () => {
    const { log, lines } = recordingLog();
    const a = new Admission({ name: 'test', log }, { limit: 1, queueLimit: 10 });
    const j = jobs();
    const first = a.run(j.job(1), { signal: new AbortController().signal });
    const gone = new AbortController();
    const second = a.run(j.job(2), { signal: gone.signal });
    const third = a.run(j.job(3), { signal: new AbortController().signal });
    await tick();
    gone.abort();
    await assert.rejects(second, { name: 'CancelledError' });
    assert.deepEqual(a.stats, { running: 1, queued: 1 });
    j.finish(1);
    await tick();
    j.finish(3);
    assert.equal(await first, 1);
    assert.equal(await third, 3);
    assert.deepEqual(j.started, [1, 3], 'the abandoned call never ran');
    const drained = lines.find((l) => l.msg === 'test: queue drained');
    assert.equal(drained?.left, 1);
    assert.equal(drained?.waited, 1);
    await assert.rejects(a.run(j.job(4), { signal: AbortSignal.abort() }), { name: 'CancelledError' });
    assert.deepEqual(j.started, [1, 3]);
  });

  it('drops a waiter at its deadline with DeadlineExceededError (injected clock)', async () => {
    const clock = new FakeClock();
    const a = new Admission({ name: 'test', log: recordingLog().log, clock }, { limit: 1, queueLimit: 10 });
    const j = jobs();
    const signal = new AbortController().signal;
    const first = a.run(j.job(1), { signal });
    const late = a.run(j.job(2), { signal, deadline: clock.now() + 1000 });
    const rejected = assert.rejects(late, (err: Error) => err instanceof DeadlineExceededError);
    await clock.advance(999);
    assert.deepEqual(a.stats, { running: 1, queued: 1 });
    await clock.advance(1);
    await rejected;
    assert.deepEqual(a.stats, { running: 1, queued: 0 });
    j.finish(1);
    assert.equal(await first, 1);
    assert.equal(clock.pending, 0, 'no timer left behind');
    await assert.rejects(a.run(j.job(3), { signal, deadline: clock.now() }), { name: 'DeadlineExceededError' });
    assert.deepEqual(j.started, [1]);
  });

  it('refuses beyond the queue bound, naming the setting', async () => {
    const a = new Admission({ name: 'test', log: recordingLog().log }, { limit: 1, queueLimit: 1, queueVar: 'NSM_MAX_QUEUED_REQUESTS' });
    const j = jobs();
    const signal = new AbortController().signal;
    const one = a.run(j.job(1), { signal });
    const two = a.run(j.job(2), { signal });
    await assert.rejects(a.run(j.job(3), { signal }), (err: Error) => err.name === 'ResourceExhaustedError' && err.message.includes('NSM_MAX_QUEUED_REQUESTS'));
    j.finish(1);
    await tick();
    j.finish(2);
    assert.deepEqual(await Promise.all([one, two]), [1, 2]);
  });

  it('a failing call frees its slot', async () => {
    const a = new Admission({ name: 'test', log: recordingLog().log }, { limit: 1, queueLimit: 10 });
    const signal = new AbortController().signal;
    await assert.rejects(a.run(() => Promise.reject(new Error('boom')), { signal }), /boom/);
    assert.equal(await a.run(() => Promise.resolve(7), { signal }), 7);
    assert.deepEqual(a.stats, { running: 0, queued: 0 });
  });

  it('rejects limits out of bounds, naming the setting', () => {
    const log = recordingLog().log;
    for (const limit of [0, -1, 1.5, MAX_CONCURRENCY + 1, Number.NaN]) {
      assert.throws(() => new Admission({ name: 'x', log }, { limit, queueLimit: 1, limitVar: 'NSM_MAX_CONCURRENT_REQUESTS' }), (err: Error) =>
        err.name === 'InvalidArgumentError' && err.message.includes('NSM_MAX_CONCURRENT_REQUESTS'));
    }
    assert.throws(() => new Admission({ name: 'x', log }, { limit: 1, queueLimit: -1, queueVar: 'Q' }), /Q/);
  });
});

describe('admitNetworkService', () => {
  const conn = (index: number) => Connection.fromPartial({ id: 'c', path: { index, pathSegments: [] } });

  it('bounds Requests entering the node; Requests from further along a path pass straight through', async () => {
    assert.equal(entering(conn(0)), true);
    assert.equal(entering(conn(1)), true);
    assert.equal(entering(conn(2)), false);
    assert.equal(entering(undefined), true);
    const j = jobs();
    let n = 0;
    const impl: NetworkServiceImplementation = {
      request: (req) => j.job(n++)().then(() => req.connection!),
      close: () => Promise.resolve({}),
    };
    const admission = networkServiceAdmission({ name: 'nsmgr', log: recordingLog().log }, { maxConcurrentRequests: 1, maxQueuedRequests: 10 });
    const svc = admitNetworkService(impl, admission);
    const call = () => ({ signal: new AbortController().signal }) as Parameters<NetworkServiceImplementation['request']>[1];
    const a = svc.request({ connection: conn(0), mechanismPreferences: [] }, call());
    const b = svc.request({ connection: conn(0), mechanismPreferences: [] }, call());
    const remote = svc.request({ connection: conn(3), mechanismPreferences: [] }, call());
    await tick();
    assert.deepEqual(j.started, [0, 1], 'the remote Request ran beside the admitted one');
    assert.deepEqual(admission.request.stats, { running: 1, queued: 1 });
    assert.deepEqual(await svc.close(conn(0), call()), {}, 'Close has its own bound');
    j.finish(0);
    j.finish(1);
    await tick();
    j.finish(2);
    await Promise.all([a, b, remote]);
  });

  it('answers a Request dropped from the queue with CANCELLED or DEADLINE_EXCEEDED', async () => {
    const clock = new FakeClock();
    const log = recordingLog().log;
    const slow = new Admission({ name: 'x', log, clock }, { limit: 1, queueLimit: 10 });
    const j = jobs();
    const impl: NetworkServiceImplementation = { request: (req) => j.job(0)().then(() => req.connection!), close: () => Promise.resolve({}) };
    const svc = admitNetworkService(impl, { request: slow, close: slow });
    const busy = svc.request({ connection: conn(0), mechanismPreferences: [] }, { signal: new AbortController().signal } as never);
    const gone = new AbortController();
    const dropped = svc.request({ connection: conn(0), mechanismPreferences: [] }, { signal: gone.signal } as never);
    gone.abort();
    await assert.rejects(dropped, (err: ServerError) => err.code === Status.CANCELLED);
    const late = assert.rejects(slow.run(() => Promise.resolve(1), { signal: new AbortController().signal, deadline: clock.now() + 5 }), { name: 'DeadlineExceededError' });
    await clock.advance(5);
    await late;
    j.finish(0);
    await busy;
  });
});
