/**
 * The independent prober of the heal benchmarks (heal-time.ts, remote.ts): `ping -D -n -i 0.01 <addr>`
 * inside a client netns, its own process (not the NSC's probe), every reply kept with its wall time (the
 * `ping -D` clock is the same as `wallNow()`), restarted when it exits; stopped at cleanup.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { onCleanup, wallNow, type Ns } from './lib.js';

export interface Reply {
  t: number;
  seq: number;
  rtt: number;
}

export class Prober {
  readonly replies: Reply[] = [];
  restarts = 0;
  #child?: ChildProcess;
  #stopped = false;
  constructor(
    private readonly ns: Ns,
    /** The address pinged (the NSE's end of the connection). */
    readonly addr: string,
  ) {
    this.#start();
    onCleanup(() => this.stop());
  }

  #start(): void {
    const child = spawn('ip', ['netns', 'exec', this.ns.name, 'stdbuf', '-oL', 'ping', '-D', '-n', '-i', '0.01', this.addr], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.#child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from [\d.]+: icmp_seq=(\d+) ttl=\d+ time=([\d.]+) ms/.exec(line);
      if (m) this.replies.push({ t: Number(m[1]) * 1000, seq: Number(m[2]), rtt: Number(m[3]) });
    });
    child.once('exit', () => {
      if (this.#stopped) return;
      this.restarts++;
      setTimeout(() => !this.#stopped && this.#start(), 10);
    });
  }

  /** First reply received after `t` (wall ms). */
  firstAfter(t: number): Reply | undefined {
    for (let i = this.replies.length - 1; i >= 0; i--) {
      if (this.replies[i]!.t <= t) return this.replies[i + 1];
    }
    return this.replies[0];
  }

  /** Largest gap between consecutive replies within [from, to] (including the gap that spans `from`). */
  maxGap(from: number, to: number): number {
    let gap = 0;
    let prev: number | undefined;
    for (const r of this.replies) {
      if (r.t < from) {
        prev = r.t;
        continue;
      }
      if (prev !== undefined) gap = Math.max(gap, r.t - prev);
      prev = r.t;
      if (r.t > to) break;
    }
    return gap;
  }

  /** True when the last `ms` have replies no more than 50 ms apart, up to now. */
  steady(windowMs: number): boolean {
    const now = wallNow();
    const last = this.replies.at(-1);
    if (!last || now - last.t > 50) return false;
    return this.maxGap(now - windowMs, now) <= 50 && (this.replies.find((r) => r.t >= now - windowMs)?.t ?? Infinity) - (now - windowMs) <= 50;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}
