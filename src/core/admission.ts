/**
 * Admission: bounded concurrency with a FIFO queue that respects each call's deadline. Overload turns
 * into waiting in order, never into more work at once (DESIGN.md "Load is normal").
 *
 * - At most `limit` calls run at once; the rest wait in arrival order, at most `queueLimit` of them (one
 *   more is refused at once with ResourceExhaustedError naming the setting).
 * - A waiting call whose caller went away (its signal aborted) or whose deadline passed leaves the queue
 *   at that moment and is never started: CancelledError, or DeadlineExceededError for the deadline.
 * - A freed slot is handed to the next live waiter directly, so a newcomer cannot overtake the queue.
 * - Logging per overload episode, not per call: info when queueing begins, info when the queue has
 *   drained (how many waited, how many left before their turn, the longest wait, the deepest queue).
 *
 * `admitNetworkService` puts two admissions (Request, Close: separate so a Request storm cannot starve
 * teardown and the other way round) in front of a NetworkService gRPC implementation, at the server edge
 * of nsmgr and the forwarder. Only calls that enter this node's work pass it (see `entering`); a Request
 * already admitted by an earlier hop is never queued again, so waits cannot form a cycle across nodes.
 * Background work: one timer per waiting call with a deadline.
 */
import type { Connection } from '../api/gen/connection.js';
import { NetworkServiceDefinition, type NetworkServiceImplementation, type NetworkServiceRequest } from '../api/gen/networkservice.js';
import { realClock, type Clock, type TimerHandle } from './clock.js';
import { CancelledError, DeadlineExceededError, InvalidArgumentError, ResourceExhaustedError, toServerError } from './errors.js';
import type { Logger } from './log.js';
import type { ServiceRegistration } from './transport.js';

export { DeadlineExceededError };

/** Bounds a user may set (both limits are env-configurable on nsmgr and the forwarder). */
export const MAX_CONCURRENCY = 1024;
export const MAX_QUEUE = 100_000;

export interface AdmissionDeps {
  /** Names the bound in logs and errors, e.g. `nsmgr Request`. */
  readonly name: string;
  readonly log: Logger;
  readonly clock?: Clock;
}

export interface AdmissionOptions {
  /** Calls running at once (1..MAX_CONCURRENCY). */
  readonly limit: number;
  /** Calls waiting at most (0..MAX_QUEUE); 0 refuses everything beyond `limit`. */
  readonly queueLimit: number;
  /** The setting names used in errors, e.g. `NSM_MAX_CONCURRENT_REQUESTS`. */
  readonly limitVar?: string;
  readonly queueVar?: string;
}

export interface AdmissionStats {
  readonly running: number;
  readonly queued: number;
}

interface Waiter {
  readonly since: number;
  readonly admit: () => void;
  readonly leave: (err: Error) => void;
}

interface Episode {
  readonly since: number;
  waited: number;
  left: number;
  maxDepth: number;
  maxWaitMs: number;
}

export class Admission {
  readonly #deps: AdmissionDeps;
  readonly #clock: Clock;
  readonly #config: Required<AdmissionOptions>;
  readonly #queue = new Set<Waiter>();
  #running = 0;
  #episode?: Episode;

  constructor(deps: AdmissionDeps, options: AdmissionOptions) {
    this.#deps = deps;
    this.#clock = deps.clock ?? realClock;
    this.#config = Object.freeze({
      limit: options.limit,
      queueLimit: options.queueLimit,
      limitVar: options.limitVar ?? `${deps.name} concurrency limit`,
      queueVar: options.queueVar ?? `${deps.name} queue limit`,
    });
    const { limit, queueLimit, limitVar, queueVar } = this.#config;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_CONCURRENCY) {
      throw new InvalidArgumentError(limitVar, limit, `must be an integer from 1 to ${MAX_CONCURRENCY}`);
    }
    if (!Number.isInteger(queueLimit) || queueLimit < 0 || queueLimit > MAX_QUEUE) {
      throw new InvalidArgumentError(queueVar, queueLimit, `must be an integer from 0 to ${MAX_QUEUE}`);
    }
  }

  get stats(): AdmissionStats {
    return { running: this.#running, queued: this.#queue.size };
  }

  /**
   * Runs `fn` once a slot is free. Waits in FIFO order; rejects without running `fn` when `signal` aborts
   * or `deadline` (epoch ms on the injected clock) passes first, or when the queue is full.
   */
  async run<T>(fn: () => Promise<T>, opts: { signal: AbortSignal; deadline?: number }): Promise<T> {
    await this.#acquire(opts.signal, opts.deadline);
    try {
      return await fn();
    } finally {
      this.#release();
    }
  }

  #acquire(signal: AbortSignal, deadline: number | undefined): Promise<void> {
    const { name } = this.#deps;
    if (signal.aborted) return Promise.reject(new CancelledError(`${name}: caller went away before its turn`, { cause: signal.reason }));
    if (deadline !== undefined && this.#clock.now() >= deadline) return Promise.reject(new DeadlineExceededError(`${name}: deadline passed before its turn`));
    if (this.#running < this.#config.limit && this.#queue.size === 0) {
      this.#running++;
      return Promise.resolve();
    }
    if (this.#queue.size >= this.#config.queueLimit) {
      return Promise.reject(new ResourceExhaustedError(`${name}: ${this.#config.limit} running and ${this.#queue.size} waiting; raise ${this.#config.queueVar} or add capacity`));
    }
    return new Promise<void>((resolve, reject) => {
      let timer: TimerHandle | undefined;
      const cleanup = () => {
        this.#queue.delete(waiter);
        signal.removeEventListener('abort', onAbort);
        timer?.cancel();
      };
      const waiter: Waiter = {
        since: this.#clock.now(),
        admit: () => {
          cleanup();
          this.#noteWait(waiter);
          resolve();
        },
        leave: (err) => {
          cleanup();
          if (this.#episode) this.#episode.left++;
          this.#maybeDrained();
          reject(err);
        },
      };
      const onAbort = () => waiter.leave(new CancelledError(`${name}: caller went away while queued`, { cause: signal.reason }));
      signal.addEventListener('abort', onAbort, { once: true });
      if (deadline !== undefined) {
        timer = this.#clock.setTimeout(() => waiter.leave(new DeadlineExceededError(`${name}: deadline passed while queued`)), deadline - this.#clock.now());
      }
      this.#enqueue(waiter);
    });
  }

  #enqueue(waiter: Waiter): void {
    this.#queue.add(waiter);
    if (!this.#episode) {
      this.#episode = { since: this.#clock.now(), waited: 0, left: 0, maxDepth: 0, maxWaitMs: 0 };
      this.#deps.log.info({ limit: this.#config.limit, running: this.#running }, `${this.#deps.name}: limit reached; queueing`);
    }
    this.#episode.maxDepth = Math.max(this.#episode.maxDepth, this.#queue.size);
  }

  #noteWait(waiter: Waiter): void {
    const e = this.#episode;
    if (!e) return;
    e.waited++;
    e.maxWaitMs = Math.max(e.maxWaitMs, this.#clock.now() - waiter.since);
  }

  #release(): void {
    this.#running--;
    const next = this.#queue.values().next();
    if (!next.done) {
      // hand the slot over: the waiter runs without the count ever dropping below the limit
      this.#running++;
      next.value.admit();
    }
    this.#maybeDrained();
  }

  #maybeDrained(): void {
    const e = this.#episode;
    if (!e || this.#queue.size > 0) return;
    this.#episode = undefined;
    this.#deps.log.info(
      { waited: e.waited, left: e.left, maxDepth: e.maxDepth, maxWaitMs: e.maxWaitMs, forMs: this.#clock.now() - e.since },
      `${this.#deps.name}: queue drained`,
    );
  }
}

/** The admissions of one NetworkService server. */
export interface NetworkServiceAdmission {
  readonly request: Admission;
  readonly close: Admission;
  /** True for calls this bound applies to; others pass straight through. Default `entering`. */
  readonly applies?: (conn: Connection | undefined) => boolean;
}

/**
 * True for a call that enters this node from a client or from this node's nsmgr: the sender's path
 * index is 0 (an NSC calling nsmgr) or 1 (nsmgr calling its forwarder). Calls from further along a path
 * were admitted where they entered; queueing them again could make two nodes wait on each other.
 */
export function entering(conn: Connection | undefined): boolean {
  return (conn?.path?.index ?? 0) <= 1;
}

/** Puts Request and Close of a NetworkService implementation behind `admission`. */
export function admitNetworkService(impl: NetworkServiceImplementation, admission: NetworkServiceAdmission): NetworkServiceImplementation {
  const applies = admission.applies ?? entering;
  const guard = async <T>(a: Admission, conn: Connection | undefined, signal: AbortSignal, fn: () => Promise<T>): Promise<T> => {
    if (!applies(conn)) return fn();
    let started = false;
    try {
      return await a.run(() => {
        started = true;
        return fn();
      }, { signal });
    } catch (err) {
      if (started) throw err;
      throw toServerError(err);
    }
  };
  return {
    request: (req: NetworkServiceRequest, call) => guard(admission.request, req.connection, call.signal, () => impl.request(req, call)),
    close: (conn: Connection, call) => guard(admission.close, conn, call.signal, () => impl.close(conn, call)),
  };
}

/** The limits of a component's NetworkService server, as its config holds them. */
export interface AdmissionLimits {
  readonly maxConcurrentRequests: number;
  readonly maxQueuedRequests: number;
}

/** Request and Close admissions of the same size for component `name` (settings named as in the env). */
export function networkServiceAdmission(deps: AdmissionDeps, limits: AdmissionLimits): NetworkServiceAdmission {
  const options = {
    limit: limits.maxConcurrentRequests,
    queueLimit: limits.maxQueuedRequests,
    limitVar: 'NSM_MAX_CONCURRENT_REQUESTS',
    queueVar: 'NSM_MAX_QUEUED_REQUESTS',
  };
  return {
    request: new Admission({ ...deps, name: `${deps.name} Request` }, options),
    close: new Admission({ ...deps, name: `${deps.name} Close` }, options),
  };
}

/** `services` with the NetworkService implementation put behind `admission` (others unchanged). */
export function admitted(services: readonly ServiceRegistration[], admission: NetworkServiceAdmission): ServiceRegistration[] {
  return services.map((s) =>
    s.definition.fullName === NetworkServiceDefinition.fullName ? { ...s, implementation: admitNetworkService(s.implementation as NetworkServiceImplementation, admission) } : s,
  );
}
