/**
 * Injectable time. Elements with timers take a `Clock` in their deps so tests drive virtual time
 * (`FakeClock`) instead of sleeping.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
}

/** Node's longest timer (2^31-1 ms, about 24.8 days); a longer delay would be clamped to 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * A timer for any delay: longer ones than Node can arm are re-armed in steps, so a long lifetime never
 * fires at once (Node clamps an out-of-range delay to 1 ms). Non-finite delays never fire.
 */
export function longTimeout(fn: () => void, ms: number): TimerHandle {
  let t: NodeJS.Timeout | undefined;
  const arm = (left: number) => {
    if (!Number.isFinite(left)) return;
    if (left > MAX_TIMER_MS) t = setTimeout(() => arm(left - MAX_TIMER_MS), MAX_TIMER_MS);
    else t = setTimeout(fn, Math.max(0, left));
  };
  arm(ms);
  return { cancel: () => clearTimeout(t) };
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: longTimeout,
};

/** Virtual clock for tests: time moves only through `advance`. */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return { cancel: () => void this.#timers.delete(id) };
  }

  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward, firing due timers in order; awaits microtasks between timers. */
  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers) if (e[1].at <= target && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.#now = next[1].at;
      next[1].fn();
      await new Promise((r) => setImmediate(r));
    }
    this.#now = target;
    await new Promise((r) => setImmediate(r));
  }
}
