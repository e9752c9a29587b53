/**
 * Bounded exponential backoff and an abortable delay on an injectable `Clock`, shared by the registry
 * client's background loops (refresh, heal, registration retry) so fake-clock tests never sleep.
 */

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

/** Abortable delay on the injectable clock (one implementation, in src/core/delay.ts). */
export { delay as clockDelay } from '../../core/delay.js';
