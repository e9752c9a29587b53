/**
 * Small helpers shared by the end-to-end benchmarks (plain scripts, not node:test): machine info,
 * percentiles, `nsmb-*` network namespaces, `nsm` processes started and killed by pid, a mesh
 * (registry + nsmgr + forwarder) and one cleanup list that also runs on Ctrl-C / SIGTERM / errors.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { stat, readdir } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import type { BenchIdentities } from './secure.js';

const run = promisify(execFile);

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const MAIN = join(ROOT, 'dist/src/cli/main.js');

/** Wall-clock time in ms with sub-ms resolution (same clock as `ping -D`). */
export const wallNow = (): number => performance.timeOrigin + performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- statistics and output ---------------------------------------------------------------------------

export interface Stats {
  n: number;
  min: number;
  p50: number;
  p95: number;
  max: number;
  mean: number;
}

export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))] ?? NaN;
  return { n: s.length, min: s[0] ?? NaN, p50: at(0.5), p95: at(0.95), max: s.at(-1) ?? NaN, mean: s.reduce((x, y) => x + y, 0) / Math.max(1, s.length) };
}

export const ms = (v: number, digits = 1): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');

/** A markdown table (also readable on a terminal). */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const w = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
  return [line(header), `|${w.map((x) => '-'.repeat(x + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

export function machineInfo(): string {
  const la = loadavg().map((x) => x.toFixed(2)).join(' ');
  return `machine: ${cpus().length} cpus (${cpus()[0]?.model ?? '?'}), kernel ${release()}, node ${process.version}, ${new Date().toISOString()}, loadavg ${la}`;
}

export const loadavgNow = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

export function argValue(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && process.argv[i + 1] !== undefined) return process.argv[i + 1]!;
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq ? eq.slice(name.length + 3) : dflt;
}

export const hasFlag = (name: string): boolean => process.argv.includes(`--${name}`);

// ---- cleanup -------------------------------------------------------------------------------------------

type Fn = () => Promise<void> | void;
const cleanups: Fn[] = [];
let cleaning: Promise<void> | undefined;

/** Registers a cleanup; they run in reverse order, once, at the end or on a signal. */
export function onCleanup(fn: Fn): void {
  cleanups.push(fn);
}

/**
 * Runs `fn`, then the cleanups it registered (reverse order), also when it throws: a stage of the
 * bench leaves nothing behind for the next one.
 */
export async function withScope<T>(fn: () => Promise<T>): Promise<T> {
  const mark = cleanups.length;
  try {
    return await fn();
  } finally {
    while (cleanups.length > mark) {
      const c = cleanups.pop()!;
      try {
        await c();
      } catch (err) {
        process.stderr.write(`cleanup: ${(err as Error).message}\n`);
      }
    }
  }
}

/** Throws once the final cleanup began (Ctrl-C): a stage still running must not start new things. */
function stopping(): void {
  if (cleaning) throw new Error('the bench is stopping');
}

export function cleanupAll(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanups.length) {
      const fn = cleanups.pop()!;
      try {
        await fn();
      } catch (err) {
        process.stderr.write(`cleanup: ${(err as Error).message}\n`);
      }
    }
  })();
  return cleaning;
}

/** Runs `main`, then the cleanups; Ctrl-C / SIGTERM / SIGHUP also run them before exiting. */
export function runBench(main: () => Promise<void>): void {
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      process.stderr.write(`\n${sig}: cleaning up…\n`);
      void cleanupAll().finally(() => process.exit(130));
    });
  }
  for (const ev of ['uncaughtException', 'unhandledRejection'] as const) {
    process.on(ev, (err: unknown) => {
      process.stderr.write(`${ev}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\ncleaning up…\n`);
      void cleanupAll().finally(() => process.exit(1));
    });
  }
  main()
    .catch((err: unknown) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    })
    .finally(() => cleanupAll().then(() => process.exit(process.exitCode ?? 0)));
}

// ---- commands ------------------------------------------------------------------------------------------

export async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** `nsenter --net=<path> argv…` with optional stdin; rejects on non-zero exit. */
export function execIn(path: string, argv: string[], input?: string): Promise<string> {
  return new Promise((res, rej) => {
    const c = spawn('nsenter', [`--net=${path}`, ...argv], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    c.on('error', rej);
    c.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`${argv.join(' ')}: exit ${code}: ${err.trim()}`))));
    if (input !== undefined) {
      c.stdin!.on('error', () => undefined);
      c.stdin!.end(input);
    }
  });
}

// ---- network namespaces --------------------------------------------------------------------------------

export interface Ns {
  name: string;
  path: string;
  inodeUrl: string;
  ino: bigint;
}

const made = new Set<string>();
// Registered first, so it runs last: processes are killed before their netns go.
onCleanup(async () => {
  for (const n of [...made]) await delNsByName(n);
});

/** Creates netns `nsmb-<tag>-<rand>` with lo up; deleted by `delNs` or at cleanup. */
export async function addNs(tag: string): Promise<Ns> {
  stopping();
  const name = `nsmb-${tag}-${Math.random().toString(36).slice(2, 7)}`;
  await run('ip', ['netns', 'add', name]);
  made.add(name);
  onCleanup(() => (made.has(name) ? delNsByName(name) : undefined));
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  const path = `/run/netns/${name}`;
  const s = await stat(path, { bigint: true });
  return { name, path, inodeUrl: `inode://${s.dev}/${s.ino}`, ino: s.ino };
}

async function delNsByName(name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await run('ip', ['netns', 'del', name]);
      break;
    } catch (err) {
      if (!existsSync(`/run/netns/${name}`)) break;
      if (attempt >= 20) {
        process.stderr.write(`cannot delete netns ${name}: ${(err as Error).message.trim()}\n`);
        return;
      }
      if (process.env.NSMB_DEBUG) process.stderr.write(`ip netns del ${name} (attempt ${attempt}): ${(err as Error).message.trim()}\n`);
      await sleep(20 * attempt);
    }
  }
  made.delete(name);
}

export async function delNs(ns: Ns): Promise<void> {
  await delNsByName(ns.name);
}

/** `nsmb-*` netns still present (named) — for the leak check at the end. */
export async function leftoverNs(): Promise<string[]> {
  return (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => made.has(n));
}

// ---- processes -----------------------------------------------------------------------------------------

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  log(): string;
  waitLog(re: RegExp, timeoutMs?: number, from?: number): Promise<RegExpExecArray>;
  /** Sends `signal` (default SIGTERM), SIGKILL after `graceMs` (default 8 s); resolves when it exited. */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Starts `nsm <args>` (inside netns `ns` when given) with its output in `<dir>/<name>.log`; killed by pid at cleanup. */
export function startNsm(dir: string, name: string, args: string[], env: Record<string, string>, ns?: Ns): Proc {
  stopping();
  const logFile = join(dir, `${name}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const cmd = ns ? 'ip' : process.execPath;
  // NSMB_NODE_ARGS: extra node flags for every component the bench starts (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`).
  const nodeArgs = (process.env.NSMB_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const argv = ns ? ['netns', 'exec', ns.name, process.execPath, ...nodeArgs, MAIN, ...args] : [...nodeArgs, MAIN, ...args];
  const child = spawn(cmd, argv, { env: { ...process.env, NSM_LOG_LEVEL: 'info', NSM_INSECURE: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  const exit = new Promise<void>((r) => child.once('exit', () => r()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const proc: Proc = {
    name,
    child,
    pid: child.pid!,
    logFile,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    waitLog: (re, timeoutMs = 15_000, from = 0) =>
      waitFor(`${name} log ${re}`, () => {
        if (!alive()) throw new Error(`${name} exited (code ${child.exitCode}, signal ${child.signalCode}); log:\n${proc.log().slice(-2000)}`);
        return re.exec(proc.log().slice(from)) ?? undefined;
      }, timeoutMs),
    async kill(signal = 'SIGTERM', graceMs = 8000) {
      if (alive()) child.kill(signal);
      const t = setTimeout(() => alive() && child.kill('SIGKILL'), graceMs);
      await exit;
      clearTimeout(t);
      out.end();
    },
  };
  onCleanup(() => proc.kill('SIGTERM'));
  return proc;
}

export function benchDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `nsmb-${prefix}-`));
  onCleanup(() => {
    if (!process.env.NSMB_KEEP_LOGS) rmSync(d, { recursive: true, force: true });
    else process.stderr.write(`logs kept in ${d}\n`);
  });
  return d;
}

export type MeshComponent = 'registry' | 'nsmgr' | 'forwarder';

export interface Mesh {
  readonly dir: string;
  readonly sock: Record<MeshComponent, string>;
  procs: Record<MeshComponent, Proc>;
  /** The identities of a secure mesh (bench/secure.ts); absent: every process runs with NSM_INSECURE=true. */
  readonly ids?: BenchIdentities;
  /** SIGKILL `c` and start it again at once; resolves when the new one logs "ready". */
  restart(c: MeshComponent, signal?: NodeJS.Signals): Promise<void>;
}

/** Env of a process `name` of the mesh: its identity when the mesh is secure, nothing otherwise (NSM_INSECURE=true). */
export const idEnv = async (mesh: { ids?: BenchIdentities }, name: string): Promise<Record<string, string>> => (mesh.ids ? mesh.ids.env(name) : {});

export async function startMesh(dir: string, levels: Partial<Record<MeshComponent, string>> = {}, extraEnv: Record<string, string> = {}, ids?: BenchIdentities): Promise<Mesh> {
  const sock = { registry: `unix://${dir}/registry.sock`, nsmgr: `unix://${dir}/nsm.io.sock`, forwarder: `unix://${dir}/forwarder.sock` };
  const envs: Record<MeshComponent, Record<string, string>> = {
    registry: { NSM_LISTEN_ON: sock.registry },
    nsmgr: { NSM_NAME: 'nsmgr-bench', NSM_LISTEN_ON: sock.nsmgr, NSM_REGISTRY_URL: sock.registry, NODE_NAME: 'node-1' },
    forwarder: { NSM_NAME: `forwarder-bench-${basename(dir).slice(-6)}`, NSM_CONNECT_TO: sock.nsmgr, NSM_LISTEN_ON: sock.forwarder, NODE_NAME: 'node-1' },
  };
  const starts: Record<string, number> = {};
  const start = async (c: MeshComponent) => {
    starts[c] = (starts[c] ?? 0) + 1;
    const p = startNsm(dir, `${c}-${starts[c]}`, [c], { NSM_LOG_LEVEL: levels[c] ?? 'info', ...extraEnv, ...envs[c], ...(await idEnv({ ids }, c)) });
    await p.waitLog(/"msg":"ready"/);
    return p;
  };
  const procs = { registry: await start('registry'), nsmgr: await start('nsmgr'), forwarder: await start('forwarder') };
  return {
    dir,
    sock,
    procs,
    ids,
    async restart(c, signal = 'SIGKILL') {
      await procs[c].kill(signal);
      procs[c] = await start(c);
    },
  };
}

/** The seed NSE (icmp responder) inside `ns`, registered with its service; resolves when ready. */
export async function startNse(mesh: Mesh, ns: Ns, env: Record<string, string>): Promise<Proc> {
  const p = startNsm(mesh.dir, 'nse', ['nse'], {
    NSM_CONNECT_TO: mesh.sock.nsmgr,
    NSM_NAME: 'nse-bench',
    NSM_SERVICE_NAMES: 'dataplane-interrupt',
    NSM_REGISTER_SERVICE: 'true',
    ...env,
    ...(await idEnv(mesh, 'nse')),
  }, ns);
  await p.waitLog(/"msg":"ready"/);
  return p;
}

/** The heal knobs a benchmark passes from its own env to the NSC (defaults otherwise). */
const HEAL_KNOBS = ['NSM_LIVENESS_CHECK_INTERVAL', 'NSM_LIVENESS_CHECK_TIMEOUT', 'NSM_HEAL_CONFIRMATIONS', 'NSM_LIVENESS_CHECK_ENABLED'] as const;

/**
 * The seed's client: `nsm nsc` for kernel://dataplane-interrupt/nsm-1 in `ns`, with the heal knobs of
 * this process's env; resolves when connected, with the NSC's effective probe settings (from its log).
 */
export async function startSeedClient(mesh: Mesh, ns: Ns, env: Record<string, string> = {}): Promise<{ proc: Proc; settings: string[] }> {
  const knobs = Object.fromEntries(HEAL_KNOBS.flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])));
  const proc = startNsm(mesh.dir, 'nsc', ['nsc'], { NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_NAME: 'nsc-bench', NSM_NETWORK_SERVICES: 'kernel://dataplane-interrupt/nsm-1', ...env, ...knobs, ...(await idEnv(mesh, 'nsc')) }, ns);
  await proc.waitLog(/"msg":"connection established"/);
  const settings = (/"config":\[([^\]]*)\]/.exec(proc.log())?.[1] ?? '')
    .split('","')
    .map((s) => s.replace(/"/g, ''))
    .filter((s) => HEAL_KNOBS.some((k) => s.startsWith(`${k}=`)));
  return { proc, settings };
}

// ---- kernel views --------------------------------------------------------------------------------------

export interface LinkView {
  ifname: string;
  flags: string[];
  operstate: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number; scope: string }>;
}

export async function linkView(ns: Ns, dev: string): Promise<LinkView | undefined> {
  try {
    return (JSON.parse(await sh('ip', ['-n', ns.name, '-j', 'addr', 'show', 'dev', dev])) as LinkView[])[0];
  } catch {
    return undefined;
  }
}

export async function nonLoLinks(ns: Ns): Promise<string[]> {
  const l = JSON.parse(await sh('ip', ['-n', ns.name, '-j', 'link', 'show'])) as Array<{ ifname: string }>;
  return l.map((x) => x.ifname).filter((n) => n !== 'lo');
}

export interface RouteView {
  dst: string;
  dev: string;
  scope?: string;
  prefsrc?: string;
  gateway?: string;
  protocol?: string;
}

export async function routes(ns: Ns): Promise<RouteView[]> {
  return JSON.parse(await sh('ip', ['-n', ns.name, '-j', 'route', 'show'])) as RouteView[];
}

// ---- process figures (/proc) ---------------------------------------------------------------------------

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on Linux). */
export const CLK_TCK = 100;

/** utime+stime+cutime+cstime (ticks) of a process: its own CPU and that of its reaped children. */
export function cpuTicks(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

/** Live descendants of `pid` (children of children …). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const kids = (p: number): number[] => {
    try {
      return readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const todo = kids(pid);
  while (todo.length) {
    const p = todo.pop()!;
    out.push(p);
    todo.push(...kids(p));
  }
  return out;
}

/** CPU ticks of `pid` and all its descendants, live and reaped. */
export const treeTicks = (pid: number): number => [pid, ...descendants(pid)].reduce((s, p) => s + cpuTicks(p), 0);

/** CPU % of one core used by the process trees of `pids` while `during` runs (children included). */
export async function cpuPercent(pids: number[][], during: () => Promise<void>): Promise<number[]> {
  const sum = (ps: number[]) => ps.reduce((s, p) => s + treeTicks(p), 0);
  const t0 = pids.map(sum);
  const w0 = wallNow();
  await during();
  const wall = wallNow() - w0;
  return pids.map((ps, i) => (((sum(ps) - t0[i]!) / CLK_TCK) * 1000 * 100) / wall);
}

export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

export function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}

export async function waitUntil(what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const until = wallNow() + timeoutMs;
  while (wallNow() < until) {
    if (await fn()) return true;
    await sleep(everyMs);
  }
  process.stderr.write(`  gave up waiting for ${what} after ${(timeoutMs / 1000).toFixed(0)} s\n`);
  return false;
}

/** Progress on stderr, with the time since the bench started. */
const benchT0 = wallNow();
export function progress(msg: string): void {
  process.stderr.write(`[${((wallNow() - benchT0) / 1000).toFixed(0).padStart(4)} s] ${msg}\n`);
}

// ---- log counters --------------------------------------------------------------------------------------

/**
 * Counts log lines by their `"msg"` in a growing pino log file, reading only what was appended since the
 * last call (a thousand connections write megabytes of log; re-reading whole files every 100 ms would
 * be the bench's own load).
 */
export class LogCounter {
  readonly #file: string;
  #offset = 0;
  #partial = '';
  readonly #counts = new Map<string, number>();
  constructor(file: string) {
    this.#file = file;
  }

  count(msg: string): number {
    this.#poll();
    return this.#counts.get(msg) ?? 0;
  }

  #poll(): void {
    if (!existsSync(this.#file)) return;
    const fd = openSync(this.#file, 'r');
    try {
      const buf = Buffer.alloc(1 << 20);
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, this.#offset);
        if (n <= 0) break;
        this.#offset += n;
        const lines = (this.#partial + buf.subarray(0, n).toString('utf8')).split('\n');
        this.#partial = lines.pop()!;
        for (const l of lines) {
          const m = /"msg":"([^"]*)"/.exec(l);
          if (m) this.#counts.set(m[1]!, (this.#counts.get(m[1]!) ?? 0) + 1);
        }
      }
    } finally {
      closeSync(fd);
    }
  }
}

/** Sum of `msg` counts over several counters. */
export const countAll = (cs: LogCounter[], msg: string): number => cs.reduce((s, c) => s + c.count(msg), 0);

// ---- memory of a running component ---------------------------------------------------------------------

/** Env that loads bench/mem-probe.js into a component: SIGWINCH then writes its memory figures to `dir`. */
export function memProbeEnv(dir: string): Record<string, string> {
  // Keeps the caller's NODE_OPTIONS (e.g. `--require` of a profiler preload) next to the probe.
  const own = process.env.NODE_OPTIONS ? `${process.env.NODE_OPTIONS} ` : '';
  return { NODE_OPTIONS: `${own}--import=${pathToFileURL(join(ROOT, 'dist/bench/mem-probe.js')).href}`, NSMB_MEM_DIR: dir };
}

export interface MemFigures {
  at: number;
  usage: NodeJS.MemoryUsage;
  spaces: Record<string, number>;
  snapshot?: string;
}

let memSeq = 0;

/** Asks the component `pid` (started with `memProbeEnv(dir)`) for its memory figures, and a heap snapshot when asked. */
export async function memFigures(pid: number, dir: string, snapshot = false, timeoutMs = 15_000): Promise<MemFigures | undefined> {
  const seq = ++memSeq;
  const file = join(dir, `mem-${pid}-${seq}.json`);
  writeFileSync(join(dir, `req-${pid}.json.tmp`), JSON.stringify({ seq, snapshot }));
  renameSync(join(dir, `req-${pid}.json.tmp`), join(dir, `req-${pid}.json`));
  try {
    process.kill(pid, 'SIGWINCH');
  } catch {
    return undefined;
  }
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as MemFigures;
    await sleep(50);
  }
  process.stderr.write(`  no memory figures from pid ${pid} in ${timeoutMs / 1000} s\n`);
  return undefined;
}

/** RSS split from /proc/<pid>/status: anonymous (heap, stacks, native allocations) and file-backed (the node binary, libraries), MiB. */
export function rssParts(pid: number): { anon: number; file: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN) / 1024;
    return { anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') };
  } catch {
    return { anon: NaN, file: NaN };
  }
}

/** A numeric `--name` argument within [min, max]; exits 2 naming the flag otherwise. */
export function numArg(name: string, dflt: number, min: number, max: number): number {
  const raw = argValue(name, String(dflt));
  const v = Number(raw);
  if (!Number.isFinite(v) || v < min || v > max) {
    process.stderr.write(`--${name} ${raw}: must be a number from ${min} to ${max}\n`);
    process.exit(2);
  }
  return v;
}
