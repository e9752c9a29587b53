/** Abortable delay on an injectable Clock (tests use FakeClock), and bounded exponential backoff with and without jitter. */
import type { Clock } from './clock.js';
import { cancelled } from './signals.js';

export function delay(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(cancelled(signal));
    const onAbort = () => {
      timer.cancel();
      reject(cancelled(signal));
    };
    const timer = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Bounded exponential backoff: base·2^(attempt-1), capped. */
export function backoff(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * `backoff` with "equal jitter": a random wait in [b/2, b) for the bounded exponential b. Clients that
 * failed together (an overloaded server answering many at once) come back spread over half the interval
 * instead of in one burst, and each still waits at least half its backoff. `random` is for tests.
 */
export function jitteredBackoff(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const b = backoff(attempt, baseMs, maxMs);
  return Math.round(b / 2 + (b / 2) * Math.min(1, Math.max(0, random())));
}
