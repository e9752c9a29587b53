/**
 * The example's traffic tools: a counted `ping` that reports success and its summary, an independent
 * timestamped `ping -D` whose replies make the timeline, and a directory of busybox applets so the seed's
 * pinger script runs with busybox's `ping` first on its PATH.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../core/errors.js';
import { ip } from './netns.js';

/** `ping -c count` from netns `ns`: ok with "n/m replies", or not ok with ping's summary line. */
export async function pingOk(ns: string, addr: string, count: number): Promise<{ ok: boolean; summary: string }> {
  try {
    const out = await ip(['netns', 'exec', ns, 'ping', '-n', '-c', String(count), '-i', '0.2', '-W', '1', addr]);
    const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
    return { ok: true, summary: m ? `${m[2]}/${m[1]} replies` : 'replies received' };
  } catch (err) {
    return { ok: false, summary: errorMessage(err).split('\n').find((l) => l.includes('transmitted')) ?? 'no reply' };
  }
}

/** A directory of busybox applet links for the seed pinger's PATH. */
export function busyboxBin(dir: string): string {
  const bin = join(dir, 'busybox-bin');
  mkdirSync(bin, { recursive: true });
  for (const applet of ['sh', 'ping', 'sed', 'touch', 'rm', 'echo', 'test', '[']) {
    if (!existsSync(join(bin, applet))) symlinkSync('/bin/busybox', join(bin, applet));
  }
  return bin;
}

export interface Reply {
  /** Arrival time, ms since the epoch (ping's `-D` stamp). */
  readonly t: number;
  readonly seq: number;
}

export interface PingCounts {
  readonly sent: number;
  readonly received: number;
}

/**
 * An independent `ping -i 0.2 -D` from netns `ns` to `addr`, started by `start()`. `replies` fills as
 * they arrive; `stop()` interrupts it and returns ping's own sent/received counts (zero if never started).
 */
export class ReplyCounter {
  readonly replies: Reply[] = [];
  #child: ChildProcess | undefined;
  #exit: Promise<void> = Promise.resolve();
  #pending = '';
  #summary = '';

  constructor(
    private readonly ns: string,
    private readonly addr: string,
  ) {}

  /** Spawns the ping; returns its process so the caller can kill it at cleanup. */
  start(): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns, 'ping', '-n', '-D', '-i', '0.2', this.addr], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.#child = child;
    child.stdout!.on('data', (d: Buffer) => this.#read(d.toString()));
    this.#exit = new Promise<void>((r) => child.once('exit', () => r()));
    return child;
  }

  async stop(): Promise<PingCounts> {
    this.#child?.kill('SIGINT');
    await this.#exit;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(this.#summary + this.#pending);
    return { sent: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
  }

  #read(chunk: string): void {
    this.#pending += chunk;
    let i;
    while ((i = this.#pending.indexOf('\n')) >= 0) {
      const line = this.#pending.slice(0, i);
      this.#pending = this.#pending.slice(i + 1);
      const m = /^\[(\d+\.\d+)\].*icmp_seq=(\d+)/.exec(line);
      if (m) this.replies.push({ t: Number(m[1]) * 1000, seq: Number(m[2]) });
      else this.#summary += `${line}\n`;
    }
  }
}
