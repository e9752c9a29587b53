/**
 * The heal state machine of one client connection.
 *
 * States: watching → suspect → (cleared → watching) | detected → repairing ⇄ backoff → reselecting → watching; closed.
 *
 * The rule, exactly:
 * 1. Detection.
 *    - Control plane: the nsmgr monitor stream reports the connection DOWN/deleted, or breaks.
 *    - Data plane, kernel state (link missing/down/no carrier, address or route missing): a fault is
 *      *confirmed* only when `confirmations` consecutive checks, one `interval` apart, all fail (default
 *      3 × 200 ms: the fault must last 400 ms). A passing check in between clears it (event `cleared`).
 *    - Data plane, probes: a probe pair that got no reply for `timeout` (after a grace of `timeout` since
 *      the last successful Request) is a confirmed fault at once: the timeout is its hysteresis.
 * 2. Decision.
 *    - Control-plane fault while the data plane checks healthy → repair in place only (re-Request on the
 *      same path; the interface is never touched). This stays sticky across retries. Exception: when a
 *      repair is answered "endpoint not found" the endpoint is gone, and the connection is reselected.
 *    - Data-plane fault → repair in place first (the forwarder reconciles; name, MAC, ifindex kept).
 *      Reselect (Close, then Request with a new forwarder/endpoint) when the repair did not restore the
 *      data plane, or when a *probe* fault (traffic, not kernel state) follows within `stableWindow` of a
 *      repair: reconciling restored the kernel state but not the traffic. A kernel-state fault always
 *      starts with a repair, however often it happens: reconciling is exactly what fixes it.
 *    - After a reselect (a new interface) the probe grace is `reselectGrace` instead of one timeout.
 * 3. Retry. A failed attempt waits a bounded backoff (100 ms doubling up to `maxBackoff`) before the next;
 *    two failed repairs of a data-plane fault escalate to reselect.
 * 4. Nothing runs after Close: every wait and watch is tied to the connection's lifetime signal.
 */
import type { Connection } from '../../api/gen/connection.js';
import type { Clock } from '../../core/clock.js';
import type { EventFactory } from '../../core/context.js';
import { backoff, delay } from '../../core/delay.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { linkSignals, ENDED } from '../../core/signals.js';
import type { DataPlaneProbe, Observation } from '../../dataplane/probe.js';
import type { ControlPlaneWatch, HealAction, HealCause, HealEvent, HealState } from './types.js';

export interface HealOptions {
  readonly interval: number;
  readonly confirmations: number;
  readonly maxBackoff: number;
  readonly stableWindow: number;
  readonly baseBackoff: number;
  /** Probe grace after a reselect (a new interface), in ms. */
  readonly reselectGrace: number;
}

export interface HealMachineDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly events: EventFactory;
  readonly probe?: DataPlaneProbe;
  readonly controlPlane?: ControlPlaneWatch;
  readonly publish: (e: HealEvent) => void;
}

type Trigger = { kind: 'cp'; reason: string } | { kind: 'dp'; obs: Extract<Observation, { ok: false }> };

export class HealMachine {
  #state: HealState = 'watching';
  #conn: Connection;
  #watchers?: AbortController;
  #queue: Trigger[] = [];
  #wake?: () => void;
  #lastRepairAt = -Infinity;
  #closing = false;
  readonly #deps: HealMachineDeps;
  readonly #opts: HealOptions;

  constructor(deps: HealMachineDeps, opts: HealOptions, conn: Connection) {
    this.#deps = deps;
    this.#opts = opts;
    this.#conn = conn;
  }

  get state(): HealState {
    return this.#state;
  }

  get connection(): Connection {
    return this.#conn;
  }

  /** Called by the heal element after every successful Request of this connection (user, refresh or heal). */
  updated(conn: Connection): void {
    this.#conn = conn;
    this.#deps.probe?.reset(conn);
    if (this.#state === 'watching' || this.#state === 'suspect') this.#restartWatchers();
  }

  /**
   * The connection is being closed by its owner: stop watching at once, so the Close's own DELETE event
   * is not taken for a fault. (An internal Close of a reselect happens while healing and does not stop it.)
   */
  closing(): void {
    if (this.#state !== 'watching' && this.#state !== 'suspect') return;
    this.#closing = true;
    this.#watchers?.abort(ENDED);
    this.#queue = [];
    this.#wake?.();
  }

  /** Runs until the connection's lifetime ends. */
  async run(): Promise<void> {
    const lifetime = this.#deps.events.lifetime;
    this.#restartWatchers();
    try {
      while (!lifetime.aborted && !this.#closing) {
        const trigger = await this.#next(lifetime);
        if (this.#closing || !trigger) break;
        await this.#handle(trigger, lifetime);
      }
    } catch (err) {
      if (!lifetime.aborted) this.#deps.log.error({ err: errorMessage(err) }, 'heal loop ended unexpectedly');
    } finally {
      this.#set('closed');
      this.#watchers?.abort(ENDED);
    }
  }

  #set(s: HealState): void {
    if (this.#state !== s) this.#deps.log.debug({ from: this.#state, to: s }, 'heal state');
    this.#state = s;
  }

  #emit(e: HealEvent): void {
    const level = e.type === 'suspect' || e.type === 'cleared' ? 'debug' : e.type === 'healed' ? 'info' : 'warn';
    this.#deps.log[level](e, `heal ${e.type}`);
    this.#deps.publish(e);
  }

  #push(t: Trigger): void {
    this.#queue.push(t);
    this.#wake?.();
  }

  async #next(signal: AbortSignal): Promise<Trigger | undefined> {
    while (this.#queue.length === 0) {
      if (this.#closing) return undefined;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        this.#wake = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
      });
      this.#wake = undefined;
    }
    return this.#queue.shift()!;
  }

  #restartWatchers(): void {
    this.#watchers?.abort(ENDED);
    if (this.#closing) return;
    this.#queue = [];
    const ac = new AbortController();
    this.#watchers = ac;
    const link = linkSignals([this.#deps.events.lifetime, ac.signal]);
    const conn = this.#conn;
    const { controlPlane, probe } = this.#deps;
    const pump = async <T>(it: AsyncIterable<T>, on: (v: T) => void) => {
      try {
        for await (const v of it) {
          if (link.signal.aborted) return;
          on(v);
        }
      } catch (err) {
        if (!link.signal.aborted) this.#push({ kind: 'cp', reason: `watch failed: ${errorMessage(err)}` });
      }
    };
    const tasks: Promise<void>[] = [];
    if (controlPlane) tasks.push(pump(controlPlane.watch(conn, link.signal), (d) => this.#push({ kind: 'cp', reason: d.reason })));
    if (probe) tasks.push(pump(probe.watch(conn, link.signal), (o) => (o.ok ? undefined : this.#push({ kind: 'dp', obs: o }))));
    void Promise.allSettled(tasks).then(() => link.dispose());
  }

  async #handle(trigger: Trigger, lifetime: AbortSignal): Promise<void> {
    const { clock, probe } = this.#deps;
    const connId = this.#conn.id;
    let cause: HealCause = trigger.kind === 'cp' ? 'control-plane' : 'data-plane';
    let detail = trigger.kind === 'cp' ? trigger.reason : trigger.obs.detail;

    if (trigger.kind === 'dp' && trigger.obs.source === 'kernel' && this.#opts.confirmations > 1) {
      this.#set('suspect');
      this.#emit({ type: 'suspect', connId, at: clock.now(), detail });
      for (let i = 1; i < this.#opts.confirmations; i++) {
        await delay(clock, this.#opts.interval, lifetime);
        const obs = await probe!.check(this.#conn, lifetime);
        if (obs.ok) {
          this.#emit({ type: 'cleared', connId, at: clock.now(), detail });
          this.#set('watching');
          this.#queue = this.#queue.filter((t) => t.kind === 'cp');
          return;
        }
        detail = obs.detail;
      }
    }
    const detectedAt = clock.now();
    this.#watchers?.abort(ENDED);
    this.#queue = [];

    let dpDown = cause === 'data-plane';
    if (!dpDown && probe) {
      const obs = await probe.check(this.#conn, lifetime);
      if (!obs.ok) {
        dpDown = true;
        cause = 'data-plane';
        detail = `${detail}; data plane: ${obs.detail}`;
      }
    }
    this.#emit({ type: 'detected', connId, at: detectedAt, cause, detail });

    let failedRepairs = 0;
    let endpointGone = false;
    const probeFault = trigger.kind === 'dp' && trigger.obs.source === 'probe';
    let forceReselect = probeFault && detectedAt - this.#lastRepairAt < this.#opts.stableWindow;
    for (let attempt = 1; !lifetime.aborted; attempt++) {
      const action: HealAction = forceReselect || endpointGone || (dpDown && failedRepairs >= 2) ? 'reselect' : 'repair';
      if (action === 'reselect') {
        this.#set('reselecting');
        const why = endpointGone ? 'endpoint gone' : forceReselect ? 'data plane failed again after a repair' : 'repairs did not restore the data plane';
        this.#emit({ type: 'reselecting', connId, at: clock.now(), attempt, why });
      } else {
        this.#set('repairing');
        this.#emit({ type: 'repairing', connId, at: clock.now(), attempt });
      }
      try {
        const conn = await this.#deps.events.request({ reselect: action === 'reselect', signal: lifetime });
        this.#conn = conn;
        if (probe && dpDown) {
          const obs = await probe.check(conn, lifetime);
          if (!obs.ok) throw new Error(`data plane still down after ${action}: ${obs.detail}`);
        }
        if (action === 'repair' && dpDown) this.#lastRepairAt = clock.now();
        this.#emit({ type: 'healed', connId, at: clock.now(), action, cause, detectedAt, ms: clock.now() - detectedAt, attempts: attempt });
        this.#set('watching');
        probe?.reset(conn, action === 'reselect' ? this.#opts.reselectGrace : undefined);
        this.#restartWatchers();
        return;
      } catch (err) {
        if (lifetime.aborted) return;
        if (err instanceof Error && err.name === 'NotFoundError') endpointGone = true;
        if (action === 'repair') failedRepairs++;
        if (action === 'reselect') forceReselect = false;
        const wait = backoff(attempt, this.#opts.baseBackoff, this.#opts.maxBackoff);
        this.#emit({ type: 'failed', connId, at: clock.now(), action, attempt, error: errorMessage(err), retryInMs: wait });
        this.#set('backoff');
        await delay(clock, wait, lifetime);
      }
    }
  }
}
