/**
 * Process and host helpers of the local mesh. A process is identified by pid AND start time
 * (`/proc/PID/stat` field 22), so a recycled pid is never signalled; nothing is ever found or killed by
 * name. Also: who owns a unix socket (core/peer.ts: the listener's inode in any netns → its holders), missing system tools, and
 * the tail of a log for error messages.
 */
import { accessSync, closeSync, constants, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { listenerInode, socketHolders } from '../core/peer.js';
import { sleep } from '../core/signals.js';

export interface ProcRecord {
  readonly pid: number;
  /** `/proc/PID/stat` starttime (clock ticks since boot). */
  readonly startTime: number;
  /** ISO time the process was started. */
  readonly started: string;
}

interface Stat {
  state: string;
  startTime: number;
}

function readStat(pid: number): Stat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
    return { state: rest[0], startTime: Number(rest[19]) };
  } catch {
    return undefined;
  }
}

/** Start time of a running (non-zombie) process, or undefined. */
export function procStartTime(pid: number): number | undefined {
  const st = readStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return undefined;
  return st.startTime;
}

export function recordFor(pid: number): ProcRecord {
  return { pid, startTime: procStartTime(pid) ?? -1, started: new Date().toISOString() };
}

/** True when the recorded process still runs (same pid, same start time, not a zombie). */
export function isRunning(rec: ProcRecord | undefined): boolean {
  if (!rec || !Number.isInteger(rec.pid) || rec.pid <= 1) return false;
  const t = procStartTime(rec.pid);
  return t !== undefined && t === rec.startTime;
}

/** Signals a recorded process only if it is still that process. Returns whether a signal was sent. */
export function signalRecorded(rec: ProcRecord | undefined, signal: NodeJS.Signals): boolean {
  if (!rec || !isRunning(rec)) return false;
  try {
    process.kill(rec.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Waits until none of the recorded processes runs; false on timeout. */
export async function waitGone(recs: readonly ProcRecord[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!recs.some((r) => isRunning(r))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when all are gone. */
export async function terminate(recs: readonly ProcRecord[], graceMs = 5000): Promise<void> {
  for (const r of recs) signalRecorded(r, 'SIGTERM');
  if (await waitGone(recs, graceMs)) return;
  for (const r of recs) signalRecorded(r, 'SIGKILL');
  await waitGone(recs, 2000);
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

/** Pid and command of the process that has the unix socket at `path` open, if any can be found (any netns). */
export async function socketOwner(path: string): Promise<{ pid: number; command: string } | undefined> {
  const inode = await listenerInode(path);
  if (inode === undefined) return undefined;
  const [holder] = await socketHolders(inode);
  return holder && { pid: holder.pid, command: cmdline(holder.pid) };
}

/** System tools the local mesh uses, with the Debian package that provides each. */
export const SYSTEM_TOOLS: Readonly<Record<string, string>> = {
  ip: 'iproute2',
  ss: 'iproute2',
  nsenter: 'util-linux',
  ping: 'iputils-ping',
  busybox: 'busybox',
};

export function findTool(name: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  const dirs = [...pathEnv.split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Undefined when all tools are there; otherwise a message naming them and the apt command. */
export function missingToolsMessage(tools: readonly string[] = Object.keys(SYSTEM_TOOLS)): string | undefined {
  const missing = tools.filter((t) => !findTool(t));
  if (missing.length === 0) return undefined;
  const pkgs = [...new Set(missing.map((t) => SYSTEM_TOOLS[t] ?? t))];
  return `missing system tool${missing.length > 1 ? 's' : ''} ${missing.join(', ')}; install with: apt-get install -y ${pkgs.join(' ')}`;
}

/** The last `lines` lines of a file (reads at most the last 16 KiB). */
export function tail(path: string, lines = 15): string {
  try {
    const size = statSync(path).size;
    const len = Math.min(size, 16 * 1024);
    const buf = Buffer.alloc(len);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, buf, 0, len, size - len);
    } finally {
      closeSync(fd);
    }
    const out = buf.toString('utf8').split('\n');
    if (out[out.length - 1] === '') out.pop();
    return out.slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

export const NOT_ROOT_MESSAGE = 'must run as root: root is needed to create network namespaces and veth interfaces (try: sudo nsm …)';
