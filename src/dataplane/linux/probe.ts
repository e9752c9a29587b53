/**
 * Linux data-plane probe for the client connections of one NSC process, run inside its own netns (tests
 * point it at another netns with `deps.netns`). One probe serves every connection of the process, and
 * its cost per connection does not grow with their number:
 *
 * - kernel state of each client interface, judged by the shared rule (`../kernel-fault.ts`): one
 *   `ip monitor` for the netns and one read of the netns per burst of kernel events, evaluated for every
 *   watched connection (`kernel-watch.ts`); `check()` shares reads the same way. An
 *   `ip link set nsm-1 down` is seen within milliseconds.
 * - ICMP through each connection: one `fping -l` for all destinations of the netns (`fping.ts`),
 *   every `interval`. Liveness is judged per connection, with its own grace (`Freshness`): silence
 *   counts from that connection's watch start (its establishment) or its last `reset` (after a heal),
 *   and nothing is faulty before one `timeout` (or the `graceMs` given to `reset`) has passed. An
 *   observation is faulty when a destination has been silent for `suspectAfter` = timeout −
 *   (confirmations − 1) · interval: the heal machine confirms a fault over `confirmations` observations
 *   one interval apart, so a confirmed probe fault means `timeout` of silence, as before, while one
 *   late observation (a stalled event loop, an fping restart) no longer heals anything.
 *   One ticker checks every watched connection each `interval` and reports a fault when it starts, not
 *   again until the connection is fresh.
 *
 * Background work (the monitor, fping, the ticker) runs while at least one connection is watched; a
 * watch's share ends when its signal aborts or its consumer stops iterating. Observations wait in a
 * bounded queue per watch that drops the oldest: heal only needs the newest state, and a stalled
 * consumer must not grow memory without bound.
 */
import type { Connection } from '../../api/gen/connection.js';
import { realClock, type Clock, type TimerHandle } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import { AsyncQueue } from '../../core/queue.js';
import { ENDED } from '../../core/signals.js';
import { bareAddress, expectedInterface, type ExpectedInterface } from '../kernel-fault.js';
import type { DataPlaneProbe, Observation } from '../probe.js';
import { IcmpProber } from './fping.js';
import { SELF, type NetnsPath } from './ip.js';
import { NetnsKernelWatch } from './kernel-watch.js';

export interface LinuxProbeOptions {
  readonly interval: number;
  readonly timeout: number;
  /** Send ICMP probes (NSM_LIVENESS_CHECK_ENABLED); kernel-state checks always run. */
  readonly icmp: boolean;
  /** Observations the heal machine takes to confirm a fault (NSM_HEAL_CONFIRMATIONS, default 1). */
  readonly confirmations?: number;
  /** The fping binary (tests). */
  readonly fping?: string;
}

export interface LinuxProbeDeps {
  log: Logger;
  clock?: Clock;
  /** The netns holding the client interfaces (default: the caller's own). */
  netns?: NetnsPath;
}

/** Observations buffered for a slow consumer before the oldest is dropped. */
export const OBSERVATION_QUEUE_LIMIT = 64;
/** Grace records of connections no longer watched are forgotten after this long (ms). */
export const GRACE_RECORD_TTL_MS = 60_000;

export type Pair = readonly [src: string, dst: string];

const family = (ip: string) => (ip.includes(':') ? 6 : 4);

/** Every same-family (src, dst) pair of bare addresses. */
export function icmpPairs(src: readonly string[], dst: readonly string[]): Pair[] {
  const pairs: Pair[] = [];
  for (const s of src) for (const d of dst) if (family(bareAddress(s)) === family(bareAddress(d))) pairs.push([bareAddress(s), bareAddress(d)]);
  return pairs;
}

/** The destinations to ping for `want` (those with a same-family source), each once. */
export function icmpTargets(want: ExpectedInterface): string[] {
  return [...new Set(icmpPairs(want.src, want.dst).map(([, d]) => d))];
}

/** Silence after which one observation calls a destination faulty (see the module comment). */
export function suspectAfter(o: Pick<LinuxProbeOptions, 'interval' | 'timeout' | 'confirmations'>): number {
  return Math.max(o.interval, o.timeout - (Math.max(1, o.confirmations ?? 1) - 1) * o.interval);
}

interface Grace {
  /** Silence counts from here. */
  start: number;
  /** Nothing is faulty before this. */
  end: number;
  /** Watches of the connection now; when 0, `idleSince` says since when. */
  watches: number;
  idleSince: number;
}

/** Per-connection probe grace and the freshness rule over the prober's last replies. */
export class Freshness {
  readonly #clock: Clock;
  readonly #timeout: number;
  readonly #suspectAfter: number;
  readonly #lastReply: (dst: string) => number | undefined;
  readonly #grace = new Map<string, Grace>();

  constructor(clock: Clock, o: { timeout: number; suspectAfter: number }, lastReply: (dst: string) => number | undefined) {
    this.#clock = clock;
    this.#timeout = o.timeout;
    this.#suspectAfter = o.suspectAfter;
    this.#lastReply = lastReply;
  }

  /** A watch of `connId` starts: its grace starts now, unless a longer one (from `reset`) runs. */
  watched(connId: string): void {
    const now = this.#clock.now();
    const g = this.#grace.get(connId);
    if (g && g.end > now + this.#timeout) g.watches++;
    else this.#grace.set(connId, { start: now, end: now + this.#timeout, watches: (g?.watches ?? 0) + 1, idleSince: now });
  }

  unwatched(connId: string): void {
    const g = this.#grace.get(connId);
    if (!g) return;
    g.watches = Math.max(0, g.watches - 1);
    if (g.watches === 0) g.idleSince = this.#clock.now();
  }

  /** Restarts the grace of `connId`; `graceMs` (when longer than the timeout) lengthens it this once. */
  reset(connId: string, graceMs?: number): void {
    const now = this.#clock.now();
    const g = this.#grace.get(connId);
    this.#grace.set(connId, { start: now, end: now + Math.max(this.#timeout, graceMs ?? 0), watches: g?.watches ?? 0, idleSince: now });
  }

  /** Drops the records of connections unwatched for longer than `ttl`. */
  sweep(ttl: number): void {
    const now = this.#clock.now();
    for (const [id, g] of this.#grace) if (g.watches === 0 && now - g.idleSince > ttl) this.#grace.delete(id);
  }

  check(connId: string, targets: readonly string[]): Observation {
    const now = this.#clock.now();
    const g = this.#grace.get(connId) ?? { start: now, end: now + this.#timeout };
    if (now < g.end) return { ok: true };
    for (const d of targets) {
      const silent = now - Math.max(this.#lastReply(d) ?? -Infinity, g.start);
      if (silent > this.#suspectAfter) return { ok: false, source: 'probe', reason: 'no-reply', detail: `no ICMP reply from ${d} for ${silent} ms` };
    }
    return { ok: true };
  }
}

interface Watched {
  readonly connId: string;
  readonly targets: readonly string[];
  readonly report: (o: Observation) => void;
  /** The last check was faulty (a fault is reported when it starts). */
  silent: boolean;
}

/** ICMP liveness of every watched connection: one prober, one ticker, per-connection grace. */
class Liveness {
  readonly #clock: Clock;
  readonly #interval: number;
  readonly #prober: IcmpProber;
  readonly freshness: Freshness;
  readonly #watched = new Set<Watched>();
  #ticker?: TimerHandle;

  constructor(deps: { log: Logger; clock: Clock; netns: NetnsPath }, o: LinuxProbeOptions) {
    this.#clock = deps.clock;
    this.#interval = o.interval;
    this.#prober = new IcmpProber(deps, { interval: o.interval, timeout: o.timeout, ...(o.fping ? { bin: o.fping } : {}) });
    this.freshness = new Freshness(deps.clock, { timeout: o.timeout, suspectAfter: suspectAfter(o) }, (d) => this.#prober.lastReply(d));
  }

  /** Watches `connId` until the returned function is called. */
  watch(connId: string, want: ExpectedInterface, report: (o: Observation) => void): () => void {
    const w: Watched = { connId, targets: icmpTargets(want), report, silent: false };
    this.#watched.add(w);
    this.freshness.watched(connId);
    for (const d of w.targets) this.#prober.add(d);
    if (!this.#ticker) this.#tick();
    return () => {
      if (!this.#watched.delete(w)) return;
      this.freshness.unwatched(connId);
      for (const d of w.targets) this.#prober.remove(d);
      if (this.#watched.size > 0) return;
      this.#ticker?.cancel();
      this.#ticker = undefined;
    };
  }

  check(connId: string, want: ExpectedInterface): Observation {
    return this.freshness.check(connId, icmpTargets(want));
  }

  #tick(): void {
    this.#ticker = this.#clock.setTimeout(() => {
      for (const w of this.#watched) {
        const o = this.freshness.check(w.connId, w.targets);
        if (!o.ok && !w.silent) w.report(o);
        w.silent = !o.ok;
      }
      this.freshness.sweep(GRACE_RECORD_TTL_MS);
      if (this.#watched.size > 0) this.#tick();
      else this.#ticker = undefined;
    }, this.#interval);
  }
}

export function linuxProbe(deps: LinuxProbeDeps, options: LinuxProbeOptions): DataPlaneProbe {
  const clock = deps.clock ?? realClock;
  const netns = deps.netns ?? SELF;
  const log = deps.log.child({ element: 'probe' });
  const kernel = new NetnsKernelWatch(netns, { log, clock, restartMs: options.interval });
  const liveness = options.icmp ? new Liveness({ log, clock, netns }, options) : undefined;

  return {
    reset(conn, graceMs) {
      liveness?.freshness.reset(conn.id, graceMs);
    },
    async check(conn: Connection, signal) {
      const want = expectedInterface(conn);
      if (!want) return { ok: true };
      const k = await kernel.check(want, signal);
      return k.ok && liveness ? liveness.check(conn.id, want) : k;
    },
    async *watch(conn, signal) {
      const want = expectedInterface(conn);
      if (!want) return;
      // Ends this watch's share of the background work when the caller aborts or stops iterating.
      const life = new AbortController();
      const end = () => life.abort(ENDED);
      signal.addEventListener('abort', end, { once: true });
      if (signal.aborted) end();
      const queue = new AsyncQueue<Observation>({ limit: OBSERVATION_QUEUE_LIMIT, overflow: 'drop-oldest', signal: life.signal, name: 'probe observations' });
      const report = (o: Observation) => void queue.push(o);
      const stops = [kernel.subscribe({ want, report }), ...(liveness ? [liveness.watch(conn.id, want, report)] : [])];
      const stop = () => stops.splice(0).forEach((s) => s());
      life.signal.addEventListener('abort', stop, { once: true });
      if (life.signal.aborted) stop();
      try {
        yield* queue;
      } finally {
        signal.removeEventListener('abort', end);
        end();
      }
    },
  };
}
