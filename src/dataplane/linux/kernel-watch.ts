/**
 * One kernel watch per netns, shared by every connection whose client interface lives there (all the
 * connections of one NSC process): one long-lived `ip monitor` for the netns, and one read of the whole
 * netns per burst of events, from which the kernel-fault rule (`../kernel-fault.ts`) is evaluated for
 * every subscribed connection. Work per kernel event is one exec however many connections watch.
 *
 * Reads are shared (`SharedRun`): a check or a burst gets the result of a read that started after it
 * asked, and everyone who asks while a read runs shares the one read after it (so events arriving during
 * a read cause exactly one more read, and no change is missed).
 *
 * Reads for bursts are spaced: a burst within BURST_READ_SPACING_MS of the last read's start waits out
 * the rest of that time (every burst in the wait shares one read). A quiet netns reads at once on its
 * first event; a netns where connections are being set up in bulk (an event every few ms) is read about
 * ten times a second instead of back to back, which was most of an NSC's CPU during a setup burst.
 * `check` (heal's confirmations and post-repair checks) is never delayed by the spacing.
 *
 * The monitor runs while at least one connection is subscribed. If it dies, it is restarted one
 * `restartMs` later, followed by a read (changes in the gap are not missed). Background work: the
 * `ip monitor` process and the restart timer, both gone when the last subscriber leaves.
 */
import type { Clock } from '../../core/clock.js';
import { delay } from '../../core/delay.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { abortable, ENDED } from '../../core/signals.js';
import { kernelFault, kernelObservation, type ExpectedInterface } from '../kernel-fault.js';
import type { Observation } from '../probe.js';
import { interfaceIn, readNetns, watchLinks } from './inspect.js';
import type { NetnsPath } from './ip.js';
import type { NetnsState } from './state.js';

/** Runs of `fn` shared by their callers: `next()` resolves with a run that started at or after the call. */
export class SharedRun<T> {
  readonly #fn: () => Promise<T>;
  #running?: Promise<T>;
  #queued?: Promise<T>;

  constructor(fn: () => Promise<T>) {
    this.#fn = fn;
  }

  next(): Promise<T> {
    if (this.#queued) return this.#queued;
    if (!this.#running) return this.#start();
    const queued = this.#running.then(
      () => undefined,
      () => undefined,
    ).then(() => {
      this.#queued = undefined;
      return this.#start();
    });
    this.#queued = queued;
    return queued;
  }

  #start(): Promise<T> {
    const p = this.#fn();
    this.#running = p;
    const clear = () => {
      if (this.#running === p) this.#running = undefined;
    };
    p.then(clear, clear);
    return p;
  }
}

export interface KernelSubscriber {
  readonly want: ExpectedInterface;
  /** Called with each fault seen after a kernel event (never with `ok`). */
  report(o: Observation): void;
}

export interface KernelWatchDeps {
  readonly log: Logger;
  readonly clock: Clock;
  /** Wait before restarting a monitor that died. */
  readonly restartMs: number;
}

type ReadResult = { state: NetnsState } | { error: string };

/** Least time between the start of one read and a read for a later burst of kernel events, ms. */
export const BURST_READ_SPACING_MS = 100;

/** The kernel-fault rule's observation of `want` in `r`. */
export function observe(want: ExpectedInterface, r: ReadResult): Observation {
  if ('error' in r) return { ok: false, source: 'kernel', reason: 'unreadable', detail: `cannot read ${want.ifname}: ${r.error}` };
  return kernelObservation(kernelFault(want, interfaceIn(r.state, want.ifname)));
}

export class NetnsKernelWatch {
  readonly #netns: NetnsPath;
  readonly #deps: KernelWatchDeps;
  readonly #subs = new Set<KernelSubscriber>();
  readonly #reads: SharedRun<ReadResult>;
  #life?: AbortController;
  /** The read whose result the last burst evaluates (bursts sharing a read evaluate it once). */
  #evaluating?: Promise<ReadResult>;
  /** When the last read started (clock ms). */
  #lastReadAt = -Infinity;
  /** A burst waiting out the spacing (the bursts meanwhile share it). */
  #spaced = false;

  constructor(netns: NetnsPath, deps: KernelWatchDeps) {
    this.#netns = netns;
    this.#deps = deps;
    this.#reads = new SharedRun(async () => {
      this.#lastReadAt = deps.clock.now();
      try {
        return { state: await readNetns(netns, { log: deps.log }) };
      } catch (err) {
        return { error: errorMessage(err) };
      }
    });
  }

  /** Subscribers now (tests, metrics). */
  get size(): number {
    return this.#subs.size;
  }

  /** The kernel state of `want` from a read that started after this call. */
  async check(want: ExpectedInterface, signal: AbortSignal): Promise<Observation> {
    try {
      return observe(want, await abortable(this.#reads.next(), signal));
    } catch (err) {
      return observe(want, { error: errorMessage(err) });
    }
  }

  /** Reports faults of `sub.want` after each kernel event until the returned function is called. */
  subscribe(sub: KernelSubscriber): () => void {
    this.#subs.add(sub);
    if (!this.#life) {
      this.#life = new AbortController();
      void this.#run(this.#life.signal);
    }
    return () => {
      if (!this.#subs.delete(sub) || this.#subs.size > 0) return;
      this.#life?.abort(ENDED);
      this.#life = undefined;
    };
  }

  async #run(signal: AbortSignal): Promise<void> {
    const { log, clock, restartMs } = this.#deps;
    while (!signal.aborted) {
      try {
        for await (const _ of watchLinks(this.#netns, signal, { log })) this.#burst(signal);
      } catch (err) {
        if (!signal.aborted) log.warn({ netns: this.#netns, err: errorMessage(err), retryInMs: restartMs }, 'kernel event watch ended; restarting it');
      }
      try {
        await delay(clock, restartMs, signal);
      } catch {
        return;
      }
      this.#burst(signal);
    }
  }

  /** A burst of kernel events: read now, or once the spacing since the last read's start has passed. */
  #burst(signal: AbortSignal): void {
    if (this.#spaced || signal.aborted) return;
    const wait = this.#lastReadAt + BURST_READ_SPACING_MS - this.#deps.clock.now();
    if (wait <= 0) {
      void this.#evaluate(signal);
      return;
    }
    this.#spaced = true;
    this.#deps.clock.setTimeout(() => {
      this.#spaced = false;
      // The watch may have stopped and started again meanwhile: evaluate for the one running now.
      const life = this.#life?.signal;
      if (life && !life.aborted) void this.#evaluate(life);
    }, wait);
  }

  /** One read for this burst (shared with the bursts and checks around it), evaluated once per subscriber. */
  async #evaluate(signal: AbortSignal): Promise<void> {
    const read = this.#reads.next();
    if (read === this.#evaluating) return;
    this.#evaluating = read;
    const r = await read;
    if (signal.aborted) return;
    for (const sub of [...this.#subs]) {
      const o = observe(sub.want, r);
      if (!o.ok) sub.report(o);
    }
  }
}
