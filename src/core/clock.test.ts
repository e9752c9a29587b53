import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { longTimeout, MAX_TIMER_MS, realClock } from './clock.js';
import { linkSignals } from './signals.js';

test('a delay beyond Node timer range fires when due, not at once (Node would clamp it to 1 ms)', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let fired = 0;
    longTimeout(() => fired++, MAX_TIMER_MS + 5_000);
    mock.timers.tick(1);
    assert.equal(fired, 0, 'not clamped to 1 ms');
    mock.timers.tick(MAX_TIMER_MS);
    assert.equal(fired, 0, 'not after the first step');
    mock.timers.tick(4_900);
    assert.equal(fired, 0, 'not before it is due');
    mock.timers.tick(200);
    assert.equal(fired, 1);
  } finally {
    mock.timers.reset();
  }
});

test('realClock timers, linked-signal timeouts: long delays do not abort at once; cancel stops re-arming', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let fired = 0;
    const h = realClock.setTimeout(() => fired++, 30 * 24 * 3_600_000);
    const link = linkSignals([], 40 * 24 * 3_600_000);
    mock.timers.tick(MAX_TIMER_MS + 1);
    assert.equal(link.signal.aborted, false);
    h.cancel();
    mock.timers.tick(30 * 24 * 3_600_000);
    assert.equal(fired, 0);
    assert.equal(link.signal.aborted, true);
    link.dispose();
  } finally {
    mock.timers.reset();
  }
});

test('an infinite delay never fires', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    let fired = 0;
    longTimeout(() => fired++, Infinity);
    mock.timers.tick(MAX_TIMER_MS);
    assert.equal(fired, 0);
  } finally {
    mock.timers.reset();
  }
});
