import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AsyncQueue } from './queue.js';

async function collect<T>(q: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of q) out.push(x);
  return out;
}

test('delivers in push order and ends after close with what was buffered', async () => {
  const q = new AsyncQueue<number>();
  q.push(1);
  q.push(2);
  const done = collect(q);
  q.push(3);
  q.close();
  assert.equal(q.push(4), false);
  assert.deepEqual(await done, [1, 2, 3]);
});

test('a waiting consumer wakes on push', async () => {
  const q = new AsyncQueue<string>();
  const first = q.next();
  setImmediate(() => q.push('a'));
  assert.deepEqual(await first, { value: 'a', done: false });
});

test('close(discard) ends at once', async () => {
  const q = new AsyncQueue<number>();
  q.push(1);
  q.close(true);
  assert.deepEqual(await collect(q), []);
});

test('abort ends the iteration without rejecting and drops the buffer', async () => {
  const ac = new AbortController();
  const q = new AsyncQueue<number>({ signal: ac.signal });
  q.push(1);
  const it = q[Symbol.asyncIterator]();
  assert.deepEqual(await it.next(), { value: 1, done: false });
  const pending = it.next();
  ac.abort();
  assert.deepEqual(await pending, { value: undefined, done: true });
  assert.equal(q.closed, true);
});

test('an already aborted signal gives a closed queue', async () => {
  const q = new AsyncQueue<number>({ signal: AbortSignal.abort() });
  assert.equal(q.push(1), false);
  assert.deepEqual(await collect(q), []);
});

test('overflow policies', () => {
  const oldest = new AsyncQueue<number>({ limit: 2, overflow: 'drop-oldest' });
  oldest.push(1);
  oldest.push(2);
  assert.equal(oldest.push(3), false);
  assert.equal(oldest.size, 2);
  assert.equal(oldest.dropped, 1);
  assert.deepEqual([oldest.next(), oldest.next()].length, 2);

  const newest = new AsyncQueue<number>({ limit: 1, overflow: 'drop-newest' });
  newest.push(1);
  assert.equal(newest.push(2), false);
  assert.equal(newest.size, 1);

  const strict = new AsyncQueue<number>({ limit: 1, name: 'events' });
  strict.push(1);
  assert.throws(() => strict.push(2), { name: 'ResourceExhaustedError', message: /events is full \(1 items\)/ });
});

test('drop-oldest keeps the newest items', async () => {
  const q = new AsyncQueue<number>({ limit: 2, overflow: 'drop-oldest' });
  for (const x of [1, 2, 3, 4]) q.push(x);
  q.close();
  assert.deepEqual(await collect(q), [3, 4]);
});

test('breaking out of the loop closes the queue', async () => {
  const q = new AsyncQueue<number>();
  q.push(1);
  q.push(2);
  for await (const _x of q) break;
  assert.equal(q.closed, true);
  assert.equal(q.push(3), false);
});

test('one consumer at a time, and the limit is checked', () => {
  const q = new AsyncQueue<number>();
  q[Symbol.asyncIterator]();
  assert.throws(() => q[Symbol.asyncIterator](), /has a consumer already/);
  assert.throws(() => new AsyncQueue({ limit: 0 }), RangeError);
});

test("'fail' overflow ends the consumer's iteration with ResourceExhaustedError, once", async () => {
  const q = new AsyncQueue<number>({ limit: 2, overflow: 'fail', name: 'watch' });
  assert.equal(q.push(1), true);
  assert.equal(q.push(2), true);
  assert.equal(q.push(3), false);
  assert.equal(q.closed, true);
  assert.equal(q.dropped, 1);
  assert.equal(q.push(4), false, 'pushes after the failure are ignored');
  await assert.rejects(collect(q), { name: 'ResourceExhaustedError', message: /watch is full \(2 items\)/ });
  assert.deepEqual(await q.next(), { value: undefined, done: true });
});

test("'fail' overflow wakes a waiting consumer with the error", async () => {
  const q = new AsyncQueue<number>({ limit: 1, overflow: 'fail' });
  const waiting = q.next();
  q.push(1); // wakes the consumer, which has not taken the item yet
  assert.equal(q.push(2), false);
  await assert.rejects(waiting, { name: 'ResourceExhaustedError' });
  assert.deepEqual(await q.next(), { value: undefined, done: true });
});

test('drain removes what is buffered and leaves the queue open', async () => {
  const q = new AsyncQueue<number>();
  q.push(1);
  q.push(2);
  assert.deepEqual(q.drain(), [1, 2]);
  assert.equal(q.size, 0);
  q.push(3);
  q.close();
  assert.deepEqual(await collect(q), [3]);
});

test('drain of a coalescing queue returns the latest item per key, in order', () => {
  const q = new AsyncQueue<{ id: string; v: number }>({ coalesce: (x) => x.id });
  q.push({ id: 'a', v: 1 });
  q.push({ id: 'b', v: 1 });
  q.push({ id: 'a', v: 2 });
  assert.deepEqual(q.drain(), [
    { id: 'b', v: 1 },
    { id: 'a', v: 2 },
  ]);
  assert.equal(q.size, 0);
});

test('coalesce: a pushed item replaces the buffered one with the same key and moves to the back', async () => {
  const q = new AsyncQueue<{ id: string; v: number }>({ coalesce: (x) => x.id, limit: 2, overflow: 'drop-oldest' });
  assert.equal(q.push({ id: 'a', v: 1 }), true);
  assert.equal(q.push({ id: 'b', v: 1 }), true);
  assert.equal(q.push({ id: 'a', v: 2 }), true, 'a replacement is not a drop, even when the queue is full');
  assert.equal(q.size, 2);
  assert.equal(q.dropped, 0);
  assert.equal(q.push({ id: 'c', v: 1 }), false, 'a new key into a full queue drops the oldest');
  assert.equal(q.dropped, 1);
  q.close();
  assert.deepEqual(await collect(q), [
    { id: 'a', v: 2 },
    { id: 'c', v: 1 },
  ]);
});
