/**
 * The one way nsm-ts touches the kernel: `ip -batch -` writes and `ip -j` reads, run in a network
 * namespace by `ip -n` itself (`-n` is not allowed inside batch lines; `ip -n NAME` opens
 * `<NETNS_RUN_DIR>/NAME`, so any nsfs path is reached as a name climbing out of that directory: one exec
 * instead of `nsenter` + `ip`). Where that directory does not exist, the same call runs once more through
 * `nsenter --net=PATH` and every later call does so too. Writing ping_group_range needs a shell inside
 * the netns (`nsenter` + `sh`), so callers ask for it only where it is not known to be set (`apply.ts`).
 * Commands run through a few long-lived shells (`shell-pool.ts`), not a Node spawn each; they get a
 * minimal environment (PATH, LC_ALL=C). Every call is logged at debug as `{op, netns, target, ms}`; every failure
 * becomes a `DataplaneError` whose `step` is the failing line's step and whose message quotes the line,
 * the netns and the kernel's answer. Async only, cancellable through `signal`.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { CancelledError, DataplaneError, errorMessage } from '../../core/errors.js';
import { linkSignals } from '../../core/signals.js';
import type { Logger } from '../../core/log.js';
import { AsyncQueue } from '../../core/queue.js';
import { SHELL_POOL_SIZE, ShellPool, ShellPoolUnavailable, type ShellResult } from './shell-pool.js';

/** An absolute path to a netns file (nsfs), or `self` for the caller's own netns. */
export type NetnsPath = string;
export const SELF: NetnsPath = 'self';

export interface BatchLine {
  /** What this line does, for errors and action lists (e.g. `add address 172.16.1.101/32`). */
  step: string;
  /** One `ip` command without the leading `ip` (e.g. `addr add 172.16.1.101/32 dev nsm-1`). */
  cmd: string;
}

/** Why a batch failed: index of the failing line (-1: outside the batch) and the kernel's answer. */
export class IpBatchFailure extends Error {
  override name = 'IpBatchFailure';
  constructor(
    readonly index: number,
    readonly reason: string,
    readonly exitCode: number | null,
  ) {
    super(reason);
  }
}

export interface RunOptions {
  op: string;
  target: string;
  signal?: AbortSignal;
}

export interface ReadResult {
  /** One parsed JSON value per read line, in order. */
  json: unknown[];
  /** `/proc/sys/net/ipv4/ping_group_range` inside the netns, when asked for. */
  pingGroupRange?: string;
}

/** One burst of `ip monitor` output. */
export interface MonitorNotice {
  at: number;
  lines: string[];
}

export const PING_GROUP_RANGE = '0 2147483647';
const SYSCTL_PATH = '/proc/sys/net/ipv4/ping_group_range';
const SYSCTL_FAILED = 97;
const MARKER = '@@nsm-ts-sysctl@@';

export const DEFAULT_IP_TIMEOUT_MS = 15_000;

/** Monitor notices buffered for a slow consumer before the oldest is dropped. */
export const MONITOR_QUEUE_LIMIT = 256;

export interface IpOptions {
  timeoutMs?: number;
  ipBin?: string;
  nsenterBin?: string;
}

type ExecResult = ShellResult;

/** What a shell answers for a command it cannot find. */
const NOT_FOUND = 127;

/** `ip -n` takes a name under its netns directory (/run/netns or /var/run/netns); climbing out reaches any path. */
const CLIMB = '../../../../../../../..';

/** The environment of every spawned `ip`, `nsenter` and `sh`: enough to find them, messages untranslated. */
const CHILD_ENV: NodeJS.ProcessEnv = Object.freeze({ PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' });

/** `ip -n` could not open a netns that exists: this `ip` has no netns directory to climb out of. */
const NO_NETNS_DIR = /Cannot open network namespace/;

/** Whether `ip -n <climb>/PATH` is used (until it fails once for a netns that exists), per `ip` binary. */
const ipNetnsWorks = new Map<string, boolean>();

/** Every `ip` call of the process runs through these (see shell-pool.ts: no fork of Node per call). */
const shells = new ShellPool(SHELL_POOL_SIZE, CHILD_ENV);
let shellsUsable = true;

/** One command as its own child process (where the shells cannot run). */
function spawnOnce(argv: string[], input: string, signal: AbortSignal): Promise<ShellResult> {
  return new Promise<ShellResult>((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: CHILD_ENV });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const onAbort = () => {
      child.kill('SIGKILL');
      reject(signal.reason instanceof Error ? signal.reason : new Error('cancelled'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined); // EPIPE when the child exits early; the exit code tells.
    child.on('error', (e) => {
      signal.removeEventListener('abort', onAbort);
      reject(e);
    });
    child.on('close', (code, sig) => {
      signal.removeEventListener('abort', onAbort);
      resolve({ code: code ?? 128 + (sig ? (osConstants.signals[sig] ?? 0) : 0), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.end(input);
  });
}

export class Ip {
  readonly #log: Logger;
  readonly #cfg: Required<IpOptions>;

  constructor(log: Logger, options: IpOptions = {}) {
    this.#log = log.child({ element: 'ip' });
    this.#cfg = Object.freeze({ timeoutMs: options.timeoutMs ?? DEFAULT_IP_TIMEOUT_MS, ipBin: options.ipBin ?? 'ip', nsenterBin: options.nsenterBin ?? 'nsenter' });
  }

  /** argv for a command run inside `netns` through nsenter. */
  argv(netns: NetnsPath, cmd: string[]): string[] {
    return netns === SELF ? cmd : [this.#cfg.nsenterBin, `--net=${netns}`, ...cmd];
  }

  /** argv for `ip <args>` inside `netns`: `ip -n` where it works, else through nsenter. */
  ipArgv(netns: NetnsPath, args: string[], viaNsenter = !this.#ipNetns()): string[] {
    if (netns === SELF) return [this.#cfg.ipBin, ...args];
    if (viaNsenter || !netns.startsWith('/')) return this.argv(netns, [this.#cfg.ipBin, ...args]);
    return [this.#cfg.ipBin, '-n', `${CLIMB}${netns}`, ...args];
  }

  #ipNetns(): boolean {
    return ipNetnsWorks.get(this.#cfg.ipBin) ?? true;
  }

  /** Runs `ip <args>` in `netns`; falls back to nsenter (for good) when `ip -n` cannot reach a netns that exists. */
  async #execIp(netns: NetnsPath, args: string[], input: string, opts: RunOptions): Promise<ExecResult> {
    const viaIp = netns !== SELF && this.#ipNetns() && netns.startsWith('/');
    const r = await this.#exec(this.ipArgv(netns, args), input, netns, opts);
    if (!viaIp || r.code === 0 || !NO_NETNS_DIR.test(r.stderr) || !existsSync(netns)) return r;
    ipNetnsWorks.set(this.#cfg.ipBin, false);
    this.#log.debug({ netns, err: clean(r.stderr) }, 'ip -n cannot reach netns paths here; using nsenter');
    return this.#exec(this.ipArgv(netns, args, true), input, netns, opts);
  }

  /**
   * Runs the lines as one `ip -j -batch -` in `netns` and returns the JSON its show lines print; stops at the first failing line and throws a
   * DataplaneError (cause: IpBatchFailure with the line index). With `pingGroupRange`, the same exec then
   * writes `0 2147483647` to the netns' ping_group_range (step `set ping_group_range`).
   */
  async batch(netns: NetnsPath, lines: BatchLine[], opts: RunOptions & { pingGroupRange?: boolean }): Promise<unknown[]> {
    if (lines.length === 0 && !opts.pingGroupRange) return [];
    const ip = this.#cfg.ipBin;
    const input = lines.map((l) => l.cmd).join('\n') + '\n';
    const r = opts.pingGroupRange
      ? await this.#exec(this.argv(netns, ['sh', '-c', `${lines.length ? `${ip} -j -batch - || exit $?; ` : ''}echo "${PING_GROUP_RANGE}" > ${SYSCTL_PATH} || exit ${SYSCTL_FAILED}`]), input, netns, opts)
      : await this.#execIp(netns, ['-j', '-batch', '-'], input, opts);
    if (r.code === 0) {
      try {
        return splitJson(r.stdout);
      } catch (err) {
        throw new DataplaneError(opts.op, `ip -batch in netns ${netns}: unparsable output`, { cause: err });
      }
    }
    if (opts.pingGroupRange && r.code === SYSCTL_FAILED) {
      throw new DataplaneError('set ping_group_range', `writing ${SYSCTL_PATH} in netns ${netns} failed: ${clean(r.stderr)}`, { cause: new IpBatchFailure(lines.length, clean(r.stderr), r.code) });
    }
    const failures = parseFailures(r.stderr);
    const f = failures[0];
    if (f && f.index >= 0 && f.index < lines.length) {
      const line = lines[f.index]!;
      throw new DataplaneError(line.step, `\`ip ${line.cmd}\` in netns ${netns} failed: ${f.reason}`, { cause: new IpBatchFailure(f.index, f.reason, r.code) });
    }
    throw new DataplaneError(opts.op, `ip -batch in netns ${netns} failed (exit ${r.code}): ${clean(r.stderr)}`, { cause: new IpBatchFailure(-1, clean(r.stderr), r.code) });
  }

  /** Runs every line (`-force`) and returns the failures instead of throwing (e.g. for tolerant deletes). */
  async batchAll(netns: NetnsPath, lines: BatchLine[], opts: RunOptions): Promise<Array<{ line: BatchLine; reason: string }>> {
    if (lines.length === 0) return [];
    const r = await this.#execIp(netns, ['-force', '-batch', '-'], lines.map((l) => l.cmd).join('\n') + '\n', opts);
    if (r.code === 0) return [];
    const failures = parseFailures(r.stderr).filter((f) => f.index >= 0 && f.index < lines.length);
    if (failures.length === 0) throw new DataplaneError(opts.op, `ip -batch in netns ${netns} failed (exit ${r.code}): ${clean(r.stderr)}`);
    return failures.map((f) => ({ line: lines[f.index]!, reason: f.reason }));
  }

  /**
   * Reads: each line is an `ip` command run with `-d -j` (one exec, `-batch`); the lines must not fail
   * (use dumps, not `dev X` filters). With `pingGroupRange` also returns that sysctl's value.
   */
  async read(netns: NetnsPath, lines: string[], opts: RunOptions & { pingGroupRange?: boolean }): Promise<ReadResult> {
    const ip = this.#cfg.ipBin;
    const input = lines.join('\n') + '\n';
    const r = opts.pingGroupRange
      ? await this.#exec(this.argv(netns, ['sh', '-c', `${ip} -d -j -batch - || exit $?; echo; echo ${MARKER}; cat ${SYSCTL_PATH}`]), input, netns, opts)
      : await this.#execIp(netns, ['-d', '-j', '-batch', '-'], input, opts);
    if (r.code !== 0) {
      const f = parseFailures(r.stderr)[0];
      const which = f && f.index >= 0 ? ` (\`ip ${lines[f.index]}\`)` : '';
      throw new DataplaneError(opts.op, `reading netns ${netns}${which} failed: ${f?.reason ?? clean(r.stderr)}`);
    }
    let text = r.stdout;
    let pingGroupRange: string | undefined;
    if (opts.pingGroupRange) {
      const i = text.lastIndexOf(MARKER);
      if (i < 0) throw new DataplaneError(opts.op, `reading netns ${netns}: no sysctl output`);
      pingGroupRange = text.slice(i + MARKER.length).trim().split(/\s+/).join(' ');
      text = text.slice(0, i);
    }
    let json: unknown[];
    try {
      json = splitJson(text);
    } catch (err) {
      throw new DataplaneError(opts.op, `reading netns ${netns}: unparsable ip -j output`, { cause: err });
    }
    if (json.length !== lines.length) throw new DataplaneError(opts.op, `reading netns ${netns}: expected ${lines.length} JSON values, got ${json.length}`);
    return pingGroupRange === undefined ? { json } : { json, pingGroupRange };
  }

  /**
   * A long-lived `ip monitor <objects>` in `netns`: yields one notice per burst of output lines until
   * `signal` aborts (the process is killed) or the consumer stops iterating. Ends with a DataplaneError
   * if the monitor dies on its own. At most MONITOR_QUEUE_LIMIT notices wait for a slow consumer; the
   * oldest go first, since a notice only says "something changed" and readers re-read the whole state.
   */
  async *monitor(netns: NetnsPath, objects: string[], signal: AbortSignal): AsyncGenerator<MonitorNotice> {
    if (signal.aborted) return;
    const argv = this.argv(netns, [this.#cfg.ipBin, 'monitor', ...objects]);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: CHILD_ENV });
    const where = { op: 'monitor', netns, target: objects.join(' '), pid: child.pid };
    this.#log.debug(where, 'ip monitor started');
    const notices = new AsyncQueue<MonitorNotice>({ limit: MONITOR_QUEUE_LIMIT, overflow: 'drop-oldest', name: 'ip monitor' });
    let ended = false;
    let failure: Error | undefined;
    const end = (error?: Error) => {
      if (ended) return;
      ended = true;
      failure = error;
      notices.close();
    };
    const stderr = collectMonitor(child, (lines) => notices.push({ at: Date.now(), lines }));
    child.on('error', (e) => end(new DataplaneError('watch links', `cannot run ${argv[0]}: ${e.message}`, { cause: e })));
    child.on('close', (code, sig) => end(signal.aborted ? undefined : new DataplaneError('watch links', `ip monitor in netns ${netns} exited (${code ?? sig}): ${clean(stderr())}`)));
    const onAbort = () => {
      end();
      child.kill('SIGKILL');
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      yield* notices;
      if (failure) throw failure;
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      this.#log.debug(where, 'ip monitor stopped');
    }
  }

  async #exec(argv: string[], input: string, netns: NetnsPath, opts: RunOptions): Promise<ExecResult> {
    const t0 = performance.now();
    const linked = linkSignals([opts.signal], this.#cfg.timeoutMs);
    try {
      if (linked.signal.aborted) throw abortError(linked.signal, opts);
      let r: ShellResult;
      try {
        r = shellsUsable ? await shells.run(argv, input, linked.signal) : await spawnOnce(argv, input, linked.signal);
      } catch (err) {
        if (err instanceof ShellPoolUnavailable) {
          shellsUsable = false;
          this.#log.warn({ err: err.message }, 'command shells unavailable; spawning every ip command');
          return await this.#exec(argv, input, netns, opts);
        }
        if (linked.signal.aborted) throw abortError(linked.signal, opts);
        throw new DataplaneError(opts.op, `cannot run ${argv[0]}: ${errorMessage(err)}`, { cause: err });
      }
      if (r.code === NOT_FOUND && /not found/.test(r.stderr) && !r.stdout) throw new DataplaneError(opts.op, `cannot run ${argv[0]}: ${clean(r.stderr)}`);
      return r;
    } finally {
      linked.dispose();
      this.#log.debug({ op: opts.op, netns, target: opts.target, ms: Math.round((performance.now() - t0) * 100) / 100 }, 'ip');
    }
  }
}

/** Splits a monitor's stdout into bursts of whole lines; returns the tail of its stderr. */
function collectMonitor(child: ChildProcessByStdio<null, Readable, Readable>, burst: (lines: string[]) => void): () => string {
  let partial = '';
  let stderr = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const text = partial + chunk;
    const cut = text.lastIndexOf('\n');
    partial = text.slice(cut + 1);
    const lines = text.slice(0, cut + 1).split('\n').filter(Boolean);
    if (lines.length) burst(lines);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c: string) => {
    stderr = (stderr + c).slice(-2000);
  });
  return () => stderr;
}

function abortError(signal: AbortSignal, opts: RunOptions): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  return new CancelledError(`${opts.op} ${opts.target}: cancelled`);
}

function clean(s: string): string {
  return s.trim().split('\n').filter(Boolean).join('; ');
}

/** Splits `ip -batch` stderr into failures: the text before each `Command failed -:N` belongs to line N. */
export function parseFailures(stderr: string): Array<{ index: number; reason: string }> {
  const out: Array<{ index: number; reason: string }> = [];
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^Command failed -:(\d+)$/.exec(line);
    if (m) {
      out.push({ index: Number(m[1]) - 1, reason: pending.join('; ') || 'failed' });
      pending = [];
    } else pending.push(line);
  }
  if (pending.length) out.push({ index: -1, reason: pending.join('; ') });
  return out;
}

/** Splits concatenated top-level JSON values (what `ip -j -batch` prints) and parses each. */
export function splitJson(text: string): unknown[] {
  const values: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === '[' || c === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === ']' || c === '}') {
      depth--;
      if (depth === 0) values.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  if (depth !== 0) throw new SyntaxError('truncated JSON');
  return values;
}
