/** Abortable delay on an injectable Clock (tests use FakeClock). */
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
