/**
 * The retry schedule of the registry client's background loops (refresh, heal, registration retry): the
 * core's bounded exponential backoff (src/core/delay.ts), counted per loop — jittered when given a random
 * source — and the abortable delay on the injectable `Clock`, so fake-clock tests never sleep.
 */
import { backoff, jitteredBackoff } from '../../core/delay.js';

export const DEFAULT_RETRY_MIN_MS = 200;
export const DEFAULT_RETRY_MAX_MS = 5_000;

/** Waits of 200 ms, 400 ms, 800 ms … capped at `max` (with `random`, each jittered into its upper half); `reset()` starts over. */
export class Backoff {
  #attempt = 0;
  constructor(
    readonly min = DEFAULT_RETRY_MIN_MS,
    readonly max = DEFAULT_RETRY_MAX_MS,
    private readonly random?: () => number,
  ) {}

  next(): number {
    this.#attempt++;
    return this.random ? jitteredBackoff(this.#attempt, this.min, this.max, this.random) : backoff(this.#attempt, this.min, this.max);
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/** Abortable delay on the injectable clock (one implementation, in src/core/delay.ts). */
export { delay as clockDelay } from '../../core/delay.js';
