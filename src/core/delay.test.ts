import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoff, jitteredBackoff } from './delay.js';

describe('backoff', () => {
  it('doubles from the base and stops at the cap', () => {
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((a) => backoff(a, 200, 5000)), [200, 400, 800, 1600, 3200, 5000]);
  });

  it('with jitter: waits between half and all of the backoff, spread by the random source', () => {
    for (const attempt of [1, 3, 10]) {
      const b = backoff(attempt, 200, 5000);
      assert.equal(jitteredBackoff(attempt, 200, 5000, () => 0), b / 2);
      assert.equal(jitteredBackoff(attempt, 200, 5000, () => 0.5), (b * 3) / 4);
      assert.ok(jitteredBackoff(attempt, 200, 5000, () => 0.999999) <= b);
    }
    // many clients failing together come back spread out, not all at the same instant
    const waits = new Set(Array.from({ length: 100 }, () => jitteredBackoff(4, 200, 5000)));
    assert.ok(waits.size > 50, `spread: ${waits.size} distinct waits of 100`);
    for (const w of waits) assert.ok(w >= 800 && w <= 1600, `${w} in [800, 1600]`);
  });
});
