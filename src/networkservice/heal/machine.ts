/**
 * The heal state machine of one client connection.
 *
 * States: watching → suspect → (cleared → watching) | detected → repairing ⇄ backoff → reselecting → watching; closed.
 *
 * The rule, exactly:
 * 1. Detection.
 *    - Control plane: the nsmgr monitor stream reports the connection DOWN/deleted, or breaks.
 *    - Data plane, kernel state (link missing/down/no carrier, address or route missing) and probes (no
 *      reply through the connection), by one rule: a fault is *confirmed* only when `confirmations`
 *      consecutive observations, one `interval` apart, all fail (default 3 × 200 ms: the fault must last
 *      400 ms). A passing check in between clears it (event `cleared`). The probe itself gives each
 *      connection its own grace from its establishment and after each heal (dataplane/probe.ts), and
 *      suspects a connection early enough that the confirmed fault still means `timeout` of silence.
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
 * 3. Retry. A failed attempt waits a bounded, jittered backoff (100 ms doubling up to `maxBackoff`, a random
 *    wait in its upper half, so clients that failed together do not retry together) before the next;
 *    two failed repairs of a data-plane fault escalate to reselect — but a repair that got no answer in time
 *    (DeadlineExceededError: a silent hop, e.g. a cut underlay between nodes) does not count: the client keeps
 *    its interface and repairs in place until the path answers or the registry drops the endpoint.
 * 4. Nothing runs after Close: every wait and watch is tied to the connection's lifetime signal.
 *
 * Step 1 is `#confirm` and `#detect`, step 2 the pure `decide()` (decide.ts), step 3 `#heal`/`#attempt`.
 * Faults reach the machine through one bounded queue (AsyncQueue); its events go to `sink`.
 */
import type { Connection } from '../../api/gen/connection.js';
import type { Clock } from '../../core/clock.js';
import type { EventFactory } from '../../core/context.js';
import { delay, jitteredBackoff } from '../../core/delay.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { AsyncQueue } from '../../core/queue.js';
import { linkSignals, ENDED } from '../../core/signals.js';
import type { DataPlaneProbe, Observation } from '../../dataplane/probe.js';
import { decide, failed, NO_ATTEMPTS, outcomeOf, type Fault } from './decide.js';
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
  /** Receives the machine's typed events (the heal client's event queue). */
  readonly sink: { push(e: HealEvent): unknown };
  /** Source of the retry jitter, in [0, 1) (tests make it fixed). */
  readonly random?: () => number;
}

/** Faults waiting to be handled; beyond this the oldest are dropped (they are all "something is wrong"). */
export const HEAL_TRIGGER_LIMIT = 64;

type Trigger = { kind: 'cp'; reason: string } | { kind: 'dp'; obs: Extract<Observation, { ok: false }> };

/** A confirmed fault, as the attempts to heal it see it. */
interface Detection {
  readonly fault: Fault;
  readonly cause: HealCause;
  readonly detectedAt: number;
}

export class HealMachine {
  #state: HealState = 'watching';
  #conn: Connection;
  #watchers?: AbortController;
  readonly #triggers: AsyncQueue<Trigger>;
  #lastRepairAt = -Infinity;
  #closing = false;
  readonly #deps: HealMachineDeps;
  readonly #opts: HealOptions;

  constructor(deps: HealMachineDeps, opts: HealOptions, conn: Connection) {
    this.#deps = deps;
    this.#opts = opts;
    this.#conn = conn;
    this.#triggers = new AsyncQueue({ limit: HEAL_TRIGGER_LIMIT, overflow: 'drop-oldest', signal: deps.events.lifetime, name: 'heal triggers' });
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
    this.#triggers.close(true);
  }

  /** Runs until the connection's lifetime ends. */
  async run(): Promise<void> {
    const lifetime = this.#deps.events.lifetime;
    this.#restartWatchers();
    try {
      for (;;) {
        const next = await this.#triggers.next();
        if (next.done || this.#closing || lifetime.aborted) break;
        await this.#handle(next.value, lifetime);
      }
    } catch (err) {
      if (!lifetime.aborted) this.#deps.log.error({ err: errorMessage(err) }, 'heal loop ended unexpectedly');
    } finally {
      this.#set('closed');
      this.#watchers?.abort(ENDED);
      this.#triggers.close(true);
    }
  }

  #set(s: HealState): void {
    if (this.#state !== s) this.#deps.log.debug({ from: this.#state, to: s }, 'heal state');
    this.#state = s;
  }

  #emit(e: HealEvent): void {
    const level = e.type === 'suspect' || e.type === 'cleared' ? 'debug' : e.type === 'healed' ? 'info' : 'warn';
    this.#deps.log[level](e, `heal ${e.type}`);
    this.#deps.sink.push(e);
  }

  #restartWatchers(): void {
    this.#watchers?.abort(ENDED);
    if (this.#closing) return;
    this.#triggers.drain();
    const ac = new AbortController();
    this.#watchers = ac;
    const link = linkSignals([this.#deps.events.lifetime, ac.signal]);
    const conn = this.#conn;
    const { controlPlane, probe } = this.#deps;
    const push = (t: Trigger) => this.#triggers.push(t);
    const pump = async <T>(it: AsyncIterable<T>, on: (v: T) => void) => {
      try {
        for await (const v of it) {
          if (link.signal.aborted) return;
          on(v);
        }
      } catch (err) {
        if (!link.signal.aborted) push({ kind: 'cp', reason: `watch failed: ${errorMessage(err)}` });
      }
    };
    const tasks: Promise<void>[] = [];
    if (controlPlane) tasks.push(pump(controlPlane.watch(conn, link.signal), (d) => push({ kind: 'cp', reason: d.reason })));
    if (probe) tasks.push(pump(probe.watch(conn, link.signal), (o) => (o.ok ? undefined : push({ kind: 'dp', obs: o }))));
    void Promise.allSettled(tasks).then(() => link.dispose());
  }

  async #handle(trigger: Trigger, lifetime: AbortSignal): Promise<void> {
    const detail = await this.#confirm(trigger, lifetime);
    if (detail === undefined) return;
    await this.#heal(await this.#detect(trigger, detail, lifetime), lifetime);
  }

  /**
   * A data-plane fault (kernel or probe) counts only when `confirmations` observations, one interval
   * apart, all fail. Returns the fault's latest detail, or undefined when a check passed (the fault
   * cleared; its queued data-plane triggers go with it).
   */
  async #confirm(trigger: Trigger, lifetime: AbortSignal): Promise<string | undefined> {
    const { clock, probe } = this.#deps;
    const connId = this.#conn.id;
    let detail = trigger.kind === 'cp' ? trigger.reason : trigger.obs.detail;
    if (trigger.kind !== 'dp' || this.#opts.confirmations <= 1) return detail;
    this.#set('suspect');
    this.#emit({ type: 'suspect', connId, at: clock.now(), detail });
    for (let i = 1; i < this.#opts.confirmations; i++) {
      await delay(clock, this.#opts.interval, lifetime);
      const obs = await probe!.check(this.#conn, lifetime);
      if (obs.ok) {
        this.#emit({ type: 'cleared', connId, at: clock.now(), detail });
        this.#set('watching');
        for (const t of this.#triggers.drain()) if (t.kind === 'cp') this.#triggers.push(t);
        return undefined;
      }
      detail = obs.detail;
    }
    return detail;
  }

  /** The fault is confirmed: stop watching, learn whether the data plane is down too, report it. */
  async #detect(trigger: Trigger, detail: string, lifetime: AbortSignal): Promise<Detection> {
    const { clock, probe } = this.#deps;
    const detectedAt = clock.now();
    this.#watchers?.abort(ENDED);
    this.#triggers.drain();
    let cause: HealCause = trigger.kind === 'cp' ? 'control-plane' : 'data-plane';
    if (cause === 'control-plane' && probe) {
      const obs = await probe.check(this.#conn, lifetime);
      if (!obs.ok) {
        cause = 'data-plane';
        detail = `${detail}; data plane: ${obs.detail}`;
      }
    }
    this.#emit({ type: 'detected', connId: this.#conn.id, at: detectedAt, cause, detail });
    const source = trigger.kind === 'cp' ? 'control-plane' : trigger.obs.source;
    return { fault: { source, dataPlaneDown: cause === 'data-plane', sinceLastRepair: detectedAt - this.#lastRepairAt }, cause, detectedAt };
  }

  /** Attempts until one heals or the connection ends; `decide()` picks each attempt's action. */
  async #heal(d: Detection, lifetime: AbortSignal): Promise<void> {
    const { clock } = this.#deps;
    const connId = this.#conn.id;
    let attempts = NO_ATTEMPTS;
    for (let attempt = 1; !lifetime.aborted; attempt++) {
      const decision = decide(d.fault, attempts, this.#opts.stableWindow);
      if (decision.action === 'reselect') {
        this.#set('reselecting');
        this.#emit({ type: 'reselecting', connId, at: clock.now(), attempt, why: decision.why });
      } else {
        this.#set('repairing');
        this.#emit({ type: 'repairing', connId, at: clock.now(), attempt });
      }
      try {
        await this.#attempt(decision.action, d, attempt, lifetime);
        return;
      } catch (err) {
        if (lifetime.aborted) return;
        attempts = failed(attempts, decision.action, outcomeOf(err));
        const wait = jitteredBackoff(attempt, this.#opts.baseBackoff, this.#opts.maxBackoff, this.#deps.random);
        this.#emit({ type: 'failed', connId, at: clock.now(), action: decision.action, attempt, error: errorMessage(err), retryInMs: wait });
        this.#set('backoff');
        await delay(clock, wait, lifetime);
      }
    }
  }

  /** One re-Request; it heals only when the data plane (if it was down) checks healthy afterwards. */
  async #attempt(action: HealAction, d: Detection, attempt: number, lifetime: AbortSignal): Promise<void> {
    const { clock, probe } = this.#deps;
    const conn = await this.#deps.events.request({ reselect: action === 'reselect', signal: lifetime });
    this.#conn = conn;
    if (probe && d.fault.dataPlaneDown) {
      const obs = await probe.check(conn, lifetime);
      if (!obs.ok) throw new Error(`data plane still down after ${action}: ${obs.detail}`);
    }
    if (action === 'repair' && d.fault.dataPlaneDown) this.#lastRepairAt = clock.now();
    const { cause, detectedAt } = d;
    this.#emit({ type: 'healed', connId: conn.id, at: clock.now(), action, cause, detectedAt, ms: clock.now() - detectedAt, attempts: attempt });
    this.#set('watching');
    probe?.reset(conn, action === 'reselect' ? this.#opts.reselectGrace : undefined);
    this.#restartWatchers();
  }
}
