/**
 * ICMP liveness of many targets with one process: the linux probe's prober. One `fping -l` (loop mode,
 * Debian package `fping`) pings every target of one netns every `interval`; its reply lines say which
 * target answered, and `lastReply(dst)` tells when. One process instead of one `ping` per connection:
 * measured with `probe-cost.ts` on the 2-core dev machine (every 200 ms, children and this process
 * included), 50 targets cost 0.8 % of a core against 2.2 % with 50 pings, 500 targets 4.9 % against
 * 37.8 % with 500 pings (which also lost a fifth of their replies to the load).
 *
 * fping takes its targets on its command line, so a new target means a new process. Changes are
 * debounced by one `interval` (a burst of new connections costs one restart), and the new process
 * starts before the old one is killed (they overlap by one `interval`), so a restart leaves no gap in
 * the replies of the targets both have. A removed target is only dropped at the next restart, or when
 * fewer than half of the running targets are still wanted; no targets → no process, at once. A removed target's
 * last reply is remembered for a while (see REPLY_MEMORY_MS).
 *
 * fping chooses the source address by routing (it has one `-S` for all targets), so unlike a
 * `ping -I src` per (src, dst) pair it checks each destination through the route the client's netns
 * has for it; with the data plane's routes (one per destination, through the connection's interface),
 * that is the connection's own interface and address.
 *
 * Background work: the fping processes (each under a guard shell that kills it when this process
 * goes away) and two timers (restart debounce, the old process's end), all gone after `stop()` or once
 * no target is wanted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Clock, TimerHandle } from '../../core/clock.js';
import { backoff } from '../../core/delay.js';
import type { Logger } from '../../core/log.js';
import { SELF, type NetnsPath } from './ip.js';

export interface FpingOptions {
  /** Period between two pings of one target, in ms. */
  readonly interval: number;
  /** Replies later than this (ms) do not count (fping's `-t`). */
  readonly timeout: number;
  /** The fping binary (tests). */
  readonly bin?: string;
  /** Whether fping runs as root (default: whether this process does). */
  readonly root?: boolean;
}

export interface FpingDeps {
  readonly log: Logger;
  readonly clock: Clock;
  readonly netns: NetnsPath;
}

/**
 * Gap between two packets (fping's `-i`, ms). 0 sends each round in one burst: one wakeup of fping per
 * round instead of one per target (measured at 500 targets every 200 ms: 3 % of a core against 10 % with
 * a 0.2 ms gap). fping allows less than 1 ms to root only.
 */
export function packetGap(root: boolean): number {
  return root ? 0 : 1;
}

/**
 * How long the last reply of a target no longer wanted is remembered: a heal stops a connection's watch
 * and checks its liveness after the repair, which must still see the replies from before the fault.
 */
export const REPLY_MEMORY_MS = 60_000;
/** Upper bound of the wait before restarting an fping that exited on its own. */
const MAX_RESPAWN_MS = 30_000;

/**
 * Runs its arguments and kills them when its stdin ends: fping outlives its parent otherwise (an NSC
 * killed with SIGKILL, a process that exits before its timers run), and keeps its netns and the
 * connection's veth alive; its stdin is a pipe from this process, which ends when this process does.
 */
export const PARENT_GUARD = 'exec 3<&0; "$@" & f=$!; { read -r _ <&3; kill $f 2>/dev/null; } & r=$!; wait $f; s=$?; kill $r 2>/dev/null; exit $s';

/** argv of the fping that pings `targets` in `netns`, under PARENT_GUARD. */
export function fpingArgv(netns: NetnsPath, targets: readonly string[], o: FpingOptions): string[] {
  const root = o.root ?? process.getuid?.() === 0;
  const fping = [o.bin ?? 'fping', '-l', '-p', String(o.interval), '-t', String(Math.max(1, Math.round(o.timeout))), '-i', String(packetGap(root)), ...targets];
  const guarded = ['sh', '-c', PARENT_GUARD, 'fping-guard', ...fping];
  return netns === SELF ? guarded : ['nsenter', `--net=${netns}`, ...guarded];
}

const REPLY = /^(\S+)\s+: \[\d+\], \d+ bytes/;

/** The target a reply line of `fping -l` is from (`10.0.0.1 : [3], 64 bytes, 0.05 ms (…)`), else undefined. */
export function fpingReply(line: string): string | undefined {
  return REPLY.exec(line)?.[1];
}

interface Running {
  readonly child: ChildProcess;
  readonly targets: ReadonlySet<string>;
}

export class IcmpProber {
  readonly #deps: FpingDeps;
  readonly #opts: FpingOptions;
  readonly #log: Logger;
  /** Wanted targets and how many connections want each. */
  readonly #refs = new Map<string, number>();
  readonly #replies = new Map<string, number>();
  #current?: Running;
  readonly #retiring = new Map<ChildProcess, TimerHandle>();
  #restart?: TimerHandle;
  #failures = 0;
  #stopped = false;
  #replyCount = 0;

  constructor(deps: FpingDeps, opts: FpingOptions) {
    this.#deps = deps;
    this.#opts = opts;
    this.#log = deps.log;
  }

  /** When `dst` last answered (clock ms), if it did (remembered for REPLY_MEMORY_MS after it is removed). */
  lastReply(dst: string): number | undefined {
    return this.#replies.get(dst);
  }

  /** Replies read so far (metrics, benchmarks). */
  get replies(): number {
    return this.#replyCount;
  }

  /** The running fping's pid (tests). */
  get pid(): number | undefined {
    return this.#current?.child.pid;
  }

  add(dst: string): void {
    this.#refs.set(dst, (this.#refs.get(dst) ?? 0) + 1);
    if (!this.#current?.targets.has(dst)) this.#schedule(this.#opts.interval);
  }

  remove(dst: string): void {
    const n = (this.#refs.get(dst) ?? 0) - 1;
    if (n > 0) {
      this.#refs.set(dst, n);
      return;
    }
    this.#refs.delete(dst);
    if (this.#refs.size === 0) return this.#idle();
    const running = this.#current?.targets.size ?? 0;
    if (this.#refs.size * 2 < running) this.#schedule(this.#opts.interval);
  }

  /** Kills every fping and cancels every timer; the prober is not used again. */
  stop(): void {
    this.#stopped = true;
    this.#idle();
  }

  /** No target is wanted: no process, no timer (at once: a stopping NSC may exit before any timer runs). */
  #idle(): void {
    this.#restart?.cancel();
    this.#restart = undefined;
    this.#kill(this.#current);
    this.#current = undefined;
    for (const [child, timer] of this.#retiring) {
      timer.cancel();
      child.stdin?.end();
    }
    this.#retiring.clear();
  }

  #schedule(ms: number): void {
    if (this.#restart || this.#stopped) return;
    this.#restart = this.#deps.clock.setTimeout(() => {
      this.#restart = undefined;
      this.#respawn();
    }, ms);
  }

  /** Starts an fping for the wanted targets (unless the running one has exactly them) and retires the old one. */
  #respawn(): void {
    const now = this.#deps.clock.now();
    for (const [dst, at] of this.#replies) if (!this.#refs.has(dst) && now - at > REPLY_MEMORY_MS) this.#replies.delete(dst);
    const want = [...this.#refs.keys()].sort();
    const cur = this.#current;
    if (cur && cur.targets.size === want.length && want.every((t) => cur.targets.has(t))) return;
    if (cur) this.#retire(cur);
    this.#current = want.length > 0 ? this.#spawn(want) : undefined;
  }

  #spawn(targets: string[]): Running {
    const argv = fpingArgv(this.#deps.netns, targets, this.#opts);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin!.on('error', () => undefined);
    const running: Running = { child, targets: new Set(targets) };
    let stderr = '';
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const dst = fpingReply(line);
      if (dst !== undefined) {
        this.#replies.set(dst, this.#deps.clock.now());
        this.#replyCount++;
        this.#failures = 0;
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (c: string) => (stderr = (stderr + c).slice(-1000)));
    child.once('error', (err) => this.#exited(running, err.message));
    child.once('exit', (code, sig) => this.#exited(running, `exit ${code ?? sig}: ${stderr.trim().split('\n').slice(-3).join('; ')}`));
    this.#log.debug({ op: 'fping', netns: this.#deps.netns, targets: targets.length, pid: child.pid }, 'fping started');
    return running;
  }

  /** An fping ended; if it is the current one it ended on its own: start another after a backoff. */
  #exited(r: Running, why: string): void {
    if (this.#current !== r || this.#stopped) return;
    this.#current = undefined;
    this.#failures++;
    const wait = backoff(this.#failures + 1, this.#opts.interval, MAX_RESPAWN_MS);
    this.#log.warn({ op: 'fping', netns: this.#deps.netns, err: why, retryInMs: wait }, 'fping ended; liveness replies stop until it runs again');
    this.#schedule(wait);
  }

  /** Lets `r` run one more interval (the new fping takes over meanwhile), then kills it. */
  #retire(r: Running): void {
    const timer = this.#deps.clock.setTimeout(() => {
      this.#retiring.delete(r.child);
      this.#kill(r);
    }, this.#opts.interval);
    this.#retiring.set(r.child, timer);
  }

  /** Ends `r`'s stdin: its guard kills fping and exits. */
  #kill(r: Running | undefined): void {
    r?.child.stdin?.end();
  }
}
