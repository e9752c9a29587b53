/**
 * Bounded exponential backoff and an abortable delay on an injectable `Clock`, shared by the registry
 * client's background loops (refresh, heal, registration retry) so fake-clock tests never sleep.
 */
import type { Clock } from '../../core/clock.js';
import { cancelled } from '../../core/signals.js';

export const DEFAULT_RETRY_MIN_MS = 200;
export const DEFAULT_RETRY_MAX_MS = 5_000;

/** 200 ms, 400 ms, 800 ms … capped at `max`; `reset()` starts over. */
export class Backoff {
  #next: number;
  constructor(
    readonly min = DEFAULT_RETRY_MIN_MS,
    readonly max = DEFAULT_RETRY_MAX_MS,
  ) {
    this.#next = min;
  }

  next(): number {
    const d = this.#next;
    this.#next = Math.min(this.max, this.#next * 2);
    return d;
  }

  reset(): void {
    this.#next = this.min;
  }
}

/** Resolves after `ms` on `clock`, or rejects with the signal's reason when it aborts first. */
export function clockDelay(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(cancelled(signal));
    const onAbort = () => {
      handle.cancel();
      reject(cancelled(signal));
    };
    const handle = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
