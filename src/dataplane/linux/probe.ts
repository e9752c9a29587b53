/**
 * Linux data-plane probe for a client connection, run by the NSC inside its own netns (tests point it
 * at another netns with `deps.netns`).
 *
 * Two signals:
 * - kernel state of the client interface, judged by the shared rule (`../kernel-fault.ts`): read at once
 *   on every kernel link/address/route event (a long-lived `ip monitor`; events arriving while a read
 *   runs cause exactly one more read) and on `check()`. Fast: an `ip link set nsm-1 down` is seen within
 *   milliseconds.
 * - ICMP through the connection: one long-lived `ping -i <interval> -I <src> <dst>` per same-family
 *   (src, dst) pair (upstream's pair rule), restarted `interval` after it exits. A pair with no reply for
 *   `timeout` — counted from the later of its last reply and the last successful Request (grace) — is a
 *   fault; `watch` checks every `interval` and reports it once until the pair answers again.
 *
 * Background work of `watch` (all stopped when its signal aborts or its consumer stops iterating): the
 * `ip monitor`, the pings, the freshness timer. Observations wait in a bounded queue that drops the oldest: heal only needs the
 * newest state, and a stalled consumer must not grow memory without bound.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Connection } from '../../api/gen/connection.js';
import { realClock, type Clock, type TimerHandle } from '../../core/clock.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { AsyncQueue } from '../../core/queue.js';
import { ENDED } from '../../core/signals.js';
import { expectedInterface, kernelFault, kernelObservation, type ExpectedInterface } from '../kernel-fault.js';
import type { DataPlaneProbe, Observation } from '../probe.js';
import { readInterface, watchLinks } from './inspect.js';
import { SELF, type NetnsPath } from './ip.js';

export interface LinuxProbeOptions {
  readonly interval: number;
  readonly timeout: number;
  /** Send ICMP probes (NSM_LIVENESS_CHECK_ENABLED); kernel-state checks always run. */
  readonly icmp: boolean;
}

export interface LinuxProbeDeps {
  log: Logger;
  clock?: Clock;
  /** The netns holding the client interface (default: the caller's own). */
  netns?: NetnsPath;
}

/** Observations buffered for a slow consumer before the oldest is dropped. */
export const OBSERVATION_QUEUE_LIMIT = 64;

export type Pair = readonly [src: string, dst: string];

const bare = (cidr: string) => cidr.split('/')[0]!;
const family = (ip: string) => (ip.includes(':') ? 6 : 4);

/** Every same-family (src, dst) pair of bare addresses. */
export function icmpPairs(src: readonly string[], dst: readonly string[]): Pair[] {
  const pairs: Pair[] = [];
  for (const s of src) for (const d of dst) if (family(bare(s)) === family(bare(d))) pairs.push([bare(s), bare(d)]);
  return pairs;
}

/** argv of the long-lived ping for one pair, run in `netns`. */
export function pingArgv(netns: NetnsPath, [src, dst]: Pair, options: Pick<LinuxProbeOptions, 'interval' | 'timeout'>): string[] {
  const args = ['-n', '-i', String(options.interval / 1000), '-W', String(Math.max(1, Math.ceil(options.timeout / 1000))), '-I', src, dst];
  const ping = ['ping', ...(family(dst) === 6 ? ['-6'] : []), ...args];
  return netns === SELF ? ping : ['nsenter', `--net=${netns}`, ...ping];
}

/** A ping output line that reports a reply. */
export function isReply(line: string): boolean {
  return line.includes('bytes from');
}

/** When each pair last answered, and whether one has been silent for longer than `timeout`. */
export class Freshness {
  readonly #clock: Clock;
  readonly #timeout: number;
  readonly #lastReply = new Map<string, number>();
  #graceFrom: number;
  /** Extra grace beyond one timeout (after a reselect: a new interface takes a moment to pass traffic). */
  #extraGrace = 0;

  constructor(clock: Clock, timeout: number) {
    this.#clock = clock;
    this.#timeout = timeout;
    this.#graceFrom = clock.now();
  }

  replied([src, dst]: Pair): void {
    this.#lastReply.set(`${src}>${dst}`, this.#clock.now());
  }

  /** Restarts the grace period; `graceMs` (when longer than the timeout) lengthens it this once. */
  reset(graceMs?: number): void {
    this.#graceFrom = this.#clock.now();
    this.#extraGrace = graceMs === undefined ? 0 : Math.max(0, graceMs - this.#timeout);
  }

  check(pairs: readonly Pair[]): Observation {
    const now = this.#clock.now();
    for (const [s, d] of pairs) {
      const since = Math.max(this.#lastReply.get(`${s}>${d}`) ?? 0, this.#graceFrom + this.#extraGrace);
      if (now - since > this.#timeout) return { ok: false, source: 'probe', reason: 'no-reply', detail: `no ICMP reply from ${d} (source ${s}) for ${now - since} ms` };
    }
    return { ok: true };
  }
}

/** `fn` run now, or, when a run is in progress, exactly once more after it (until `stop` aborts). */
export function coalesced(fn: () => Promise<void>, stop: AbortSignal): () => Promise<void> {
  let running = false;
  let again = false;
  return async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await fn();
      } while (again && !stop.aborted);
    } finally {
      running = false;
    }
  };
}

/** Every `interval`, `check()`; a fault is reported when it starts, not again until a check was ok. */
export function freshnessTicker(clock: Clock, interval: number, check: () => Observation, report: (o: Observation) => void): TimerHandle {
  let silent = false;
  let timer: TimerHandle;
  let cancelled = false;
  const tick = () => {
    const o = check();
    if (!o.ok && !silent) report(o);
    silent = !o.ok;
    if (!cancelled) timer = clock.setTimeout(tick, interval);
  };
  timer = clock.setTimeout(tick, interval);
  return {
    cancel() {
      cancelled = true;
      timer.cancel();
    },
  };
}

async function kernelCheck(netns: NetnsPath, want: ExpectedInterface, signal?: AbortSignal): Promise<Observation> {
  try {
    const seen = await readInterface(netns, want.ifname, signal ? { signal } : {});
    return kernelObservation(kernelFault(want, seen));
  } catch (err) {
    return { ok: false, source: 'kernel', reason: 'unreadable', detail: `cannot read ${want.ifname}: ${errorMessage(err)}` };
  }
}

/** Reads the kernel state on every kernel event in `netns` and reports faults, until `signal` aborts. */
function watchKernel(netns: NetnsPath, want: ExpectedInterface, signal: AbortSignal, report: (o: Observation) => void, log: Logger): void {
  const read = coalesced(async () => {
    const o = await kernelCheck(netns, want, signal);
    if (!o.ok && !signal.aborted) report(o);
  }, signal);
  void (async () => {
    try {
      for await (const _ of watchLinks(netns, signal)) void read();
    } catch (err) {
      if (!signal.aborted) log.warn({ err: errorMessage(err) }, 'kernel event watch ended');
    }
  })();
}

/** One long-lived ping, restarted `interval` after it exits, until `signal` aborts (which kills it). */
function keepPinging(argv: string[], clock: Clock, interval: number, signal: AbortSignal, onReply: () => void): void {
  let child: ChildProcess | undefined;
  let restart: TimerHandle | undefined;
  const start = () => {
    if (signal.aborted) return;
    child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (isReply(line)) onReply();
    });
    child.once('error', () => undefined);
    child.once('exit', () => {
      if (!signal.aborted) restart = clock.setTimeout(start, interval);
    });
  };
  signal.addEventListener(
    'abort',
    () => {
      restart?.cancel();
      child?.kill('SIGKILL');
    },
    { once: true },
  );
  start();
}

export function linuxProbe(deps: LinuxProbeDeps, options: LinuxProbeOptions): DataPlaneProbe {
  const clock = deps.clock ?? realClock;
  const netns = deps.netns ?? SELF;
  const log = deps.log.child({ element: 'probe' });
  const freshness = new Freshness(clock, options.timeout);
  const probeCheck = (want: ExpectedInterface): Observation => (options.icmp ? freshness.check(icmpPairs(want.src, want.dst)) : { ok: true });

  function watchIcmp(want: ExpectedInterface, signal: AbortSignal, report: (o: Observation) => void): void {
    for (const pair of icmpPairs(want.src, want.dst)) keepPinging(pingArgv(netns, pair, options), clock, options.interval, signal, () => freshness.replied(pair));
    const ticker = freshnessTicker(clock, options.interval, () => probeCheck(want), report);
    signal.addEventListener('abort', () => ticker.cancel(), { once: true });
  }

  return {
    reset(_conn, graceMs) {
      freshness.reset(graceMs);
    },
    async check(conn: Connection, signal) {
      const want = expectedInterface(conn);
      if (!want) return { ok: true };
      const k = await kernelCheck(netns, want, signal);
      return k.ok ? probeCheck(want) : k;
    },
    async *watch(conn, signal) {
      const want = expectedInterface(conn);
      if (!want) return;
      // Ends the background work when the caller aborts or stops iterating.
      const life = new AbortController();
      const end = () => life.abort(ENDED);
      signal.addEventListener('abort', end, { once: true });
      if (signal.aborted) end();
      const queue = new AsyncQueue<Observation>({ limit: OBSERVATION_QUEUE_LIMIT, overflow: 'drop-oldest', signal: life.signal, name: 'probe observations' });
      const report = (o: Observation) => void queue.push(o);
      watchKernel(netns, want, life.signal, report, log);
      if (options.icmp) watchIcmp(want, life.signal, report);
      try {
        yield* queue;
      } finally {
        signal.removeEventListener('abort', end);
        end();
      }
    },
  };
}
