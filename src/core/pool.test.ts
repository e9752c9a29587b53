import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forEachLimited } from './pool.js';

test('forEachLimited runs every item, in list order, never more than the limit at once', async () => {
  let running = 0;
  let most = 0;
  const started: number[] = [];
  await forEachLimited([1, 2, 3, 4, 5, 6, 7], 3, async (x) => {
    started.push(x);
    most = Math.max(most, ++running);
    await new Promise((r) => setImmediate(r));
    running--;
  });
  assert.deepEqual(started, [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(most, 3);
});

test('forEachLimited: an empty list and a limit below 1 are fine; a failure rejects', async () => {
  await forEachLimited([], 4, async () => assert.fail('no item'));
  const seen: number[] = [];
  await forEachLimited([1, 2], 0, async (x) => void seen.push(x));
  assert.deepEqual(seen, [1, 2]);
  await assert.rejects(forEachLimited([1], 2, async () => Promise.reject(new Error('boom'))), /boom/);
});
