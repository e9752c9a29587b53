/**
 * End-to-end harness: real processes, real network namespaces, cleaned up by the test that made them.
 * Every netns is named `nsmt-*`; every process is killed by the pid this harness started; the runner
 * (scripts/run-tests.mjs) checks afterwards that nothing was left.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, createWriteStream, readFileSync, mkdirSync, symlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { SEED_PINGER_SCRIPT } from '../src/local/example.js';

const run = promisify(execFile);

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const MAIN = join(ROOT, 'dist/src/cli/main.js');
export const IS_ROOT = process.getuid?.() === 0;
export const NOT_ROOT_REASON = 'needs root (network namespaces, veth interfaces)';

const stacks = new WeakMap<TestContext, Array<() => unknown>>();

/**
 * Registers a cleanup; a test's cleanups run last-in-first-out (node:test runs `t.after` hooks in
 * registration order), so clients stop before the mesh they talk to, and temp dirs go last.
 */
export function defer(t: TestContext, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (!stack) {
    const fns: Array<() => unknown> = [];
    stacks.set(t, fns);
    t.after(async () => {
      for (const f of fns.reverse()) {
        try {
          await f();
        } catch (err) {
          console.error(`cleanup failed: ${(err as Error).message}`);
        }
      }
    });
    stack = fns;
  }
  stack.push(fn);
}

/** Skips (with a printed reason) unless running as root. */
export function requireRoot(t: TestContext): boolean {
  if (!IS_ROOT) {
    t.skip(NOT_ROOT_REASON);
    return false;
  }
  return true;
}

export function tempDir(t: TestContext, prefix = 'nsmt-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  if (!process.env.NSMT_KEEP_DIRS) defer(t, () => rmSync(d, { recursive: true, force: true }));
  return d;
}

export async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const until = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// ---- Network namespaces ------------------------------------------------------------------------------

export async function netnsDelete(name: string): Promise<void> {
  await run('ip', ['netns', 'del', name]).catch(() => undefined);
}

/** Creates netns `nsmt-<base>-<rand>`; deleted after the test (waiting until it is really gone). */
export async function netns(t: TestContext, base: string): Promise<string> {
  const name = `nsmt-${base}-${Math.random().toString(36).slice(2, 7)}`;
  await run('ip', ['netns', 'add', name]);
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  defer(t, () => netnsDelete(name));
  return name;
}

export interface LinkInfo {
  ifname: string;
  ifindex: number;
  address: string;
  operstate: string;
  flags: string[];
  ifalias?: string;
}

export async function link(ns: string, name: string): Promise<LinkInfo | undefined> {
  try {
    const out = JSON.parse(await sh('ip', ['-n', ns, '-j', 'link', 'show', 'dev', name])) as LinkInfo[];
    return out[0];
  } catch {
    return undefined;
  }
}

export async function links(ns: string): Promise<LinkInfo[]> {
  return JSON.parse(await sh('ip', ['-n', ns, '-j', 'link'])) as LinkInfo[];
}

export async function addrs(ns: string, name: string): Promise<string[]> {
  const out = JSON.parse(await sh('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', name])) as Array<{ addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>;
  return (out[0]?.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`);
}

/** One ping; true when answered. */
export async function ping(ns: string, addr: string, count = 1, waitS = 1): Promise<boolean> {
  try {
    await run('ip', ['netns', 'exec', ns, 'ping', '-n', '-q', '-c', String(count), '-W', String(waitS), '-i', '0.2', addr]);
    return true;
  } catch {
    return false;
  }
}

// ---- Processes ---------------------------------------------------------------------------------------

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  log(): string;
  waitLog(re: RegExp, timeoutMs?: number): Promise<string>;
  exited(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `nsm <args>` (optionally inside netns `ns`) with `env`; output goes to a log file in `dir`.
 * Killed (SIGKILL after a SIGTERM grace) after the test.
 */
export function nsm(t: TestContext, dir: string, name: string, args: string[], env: ProcEnv, ns?: string): Proc {
  return nodeProc(t, dir, name, [MAIN, ...args], env, ns);
}

/**
 * `node <script> <args…>` (in netns `ns`, if given) as a Proc, with its output in `<dir>/<name>.log`.
 * Components get NSM_INSECURE=true unless `env` says otherwise (`undefined` unsets a variable): the meshes
 * of these tests have no SVIDs until the embedded issuer starts them (test/identity.test.ts runs with SVIDs).
 */
export function nodeProc(t: TestContext, dir: string, name: string, scriptAndArgs: string[], env: ProcEnv, ns?: string): Proc {
  const logFile = join(dir, `${name}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const cmd = ns ? 'ip' : process.execPath;
  const argv = ns ? ['netns', 'exec', ns, process.execPath, ...scriptAndArgs] : scriptAndArgs;
  const child = spawn(cmd, argv, { env: { ...process.env, NSM_LOG_LEVEL: 'debug', NSM_INSECURE: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  const exit = new Promise<number | null>((r) => child.once('exit', (code, sig) => r(code ?? (sig ? 128 : null))));
  const proc: Proc = {
    name,
    child,
    pid: child.pid!,
    logFile,
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
    waitLog: (re, timeoutMs = 15_000) =>
      waitFor(`${name} log ${re}`, () => {
        const m = re.exec(proc.log());
        return m ? m[0] : undefined;
      }, timeoutMs),
    exited: () => exit,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const t0 = setTimeout(() => child.kill('SIGKILL'), 8000);
      const code = await exit;
      clearTimeout(t0);
      return code;
    },
  };
  defer(t, async () => {
    await proc.kill('SIGTERM');
    out.end();
  });
  return proc;
}

/** A mesh on this host for one test: registry, nsmgr and forwarder processes with sockets in `dir`. */
export interface Mesh {
  readonly dir: string;
  readonly sock: { registry: string; nsmgr: string; forwarder: string };
  registry: Proc;
  nsmgr: Proc;
  forwarder: Proc;
  env(component: 'registry' | 'nsmgr' | 'forwarder'): ProcEnv;
  /** SIGKILL a component and start it again with the same env; resolves when it is ready. */
  restart(component: 'registry' | 'nsmgr' | 'forwarder', signal?: NodeJS.Signals): Promise<void>;
}

/** Env of a test process: `undefined` unsets a variable (e.g. the NSM_INSECURE=true that `nodeProc` sets by default). */
export type ProcEnv = Record<string, string | undefined>;

export async function startMesh(t: TestContext, opts: { registryEnv?: ProcEnv; nsmgrEnv?: ProcEnv; forwarderEnv?: ProcEnv } = {}): Promise<Mesh> {
  const dir = tempDir(t, 'nsmt-mesh-');
  const sock = { registry: `unix://${dir}/registry.sock`, nsmgr: `unix://${dir}/nsm.io.sock`, forwarder: `unix://${dir}/forwarder.sock` };
  const envs = {
    registry: { NSM_LISTEN_ON: sock.registry, ...opts.registryEnv },
    nsmgr: { NSM_NAME: 'nsmgr-test', NSM_LISTEN_ON: sock.nsmgr, NSM_REGISTRY_URL: sock.registry, NODE_NAME: 'node-1', ...opts.nsmgrEnv },
    // a name of its own per mesh: the forwarder's links carry it, and another mesh's forwarder on this
    // machine (another test, a benchmark) leaves them alone
    forwarder: { NSM_NAME: `forwarder-test-${basename(dir).slice(-6)}`, NSM_CONNECT_TO: sock.nsmgr, NSM_LISTEN_ON: sock.forwarder, NODE_NAME: 'node-1', ...opts.forwarderEnv },
  };
  const starts: Record<string, number> = {};
  const start = async (c: 'registry' | 'nsmgr' | 'forwarder') => {
    starts[c] = (starts[c] ?? 0) + 1;
    const p = nsm(t, dir, `${c}-${starts[c]}`, [c], envs[c]);
    await p.waitLog(/"msg":"ready"/);
    return p;
  };
  const mesh: Mesh = {
    dir,
    sock,
    registry: await start('registry'),
    nsmgr: await start('nsmgr'),
    forwarder: await start('forwarder'),
    env: (c) => envs[c],
    async restart(c, signal = 'SIGKILL') {
      await mesh[c].kill(signal);
      mesh[c] = await start(c);
    },
  };
  return mesh;
}

/** A directory whose `sh`, `ping`, `sed`, `touch`, `test`, … are busybox applets, as in upstream's alpine images. */
export function busyboxPath(dir: string): string {
  const bin = join(dir, 'busybox-bin');
  if (!existsSync(bin)) {
    mkdirSync(bin, { recursive: true });
    for (const applet of ['sh', 'ping', 'sed', 'touch', 'test', 'rm', 'sleep', 'echo', 'timeout', 'cat', '[']) {
      symlinkSync('/bin/busybox', join(bin, applet));
    }
  }
  return bin;
}

/** The seed's pinger script (one copy, in the example command). */
export const SEED_PINGER = SEED_PINGER_SCRIPT;

/** Starts the seed pinger under busybox inside `ns`; killed after the test. */
export function seedPinger(t: TestContext, dir: string, ns: string, pingerPath: string): ChildProcess {
  const bin = busyboxPath(dir);
  const child = spawn('ip', ['netns', 'exec', ns, '/bin/busybox', 'sh', '-c', SEED_PINGER, '-', pingerPath], {
    env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  defer(t, () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  return child;
}

// ---- Seed topology -----------------------------------------------------------------------------------

export const NETSVC_YAML = join(ROOT, 'deployments/examples/heal/dataplane-interrupt/netsvc.yaml');

export interface Pods {
  nscNs: string;
  nseNs: string;
  nse: Proc;
  nsc: Proc;
}

/** The seed's env for the NSE (NSM_REGISTER_SERVICE=false: the service comes from netsvc.yaml). */
export function seedNseEnv(mesh: Mesh, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NSM_NAME: 'nse-kernel-1',
    NSM_CONNECT_TO: mesh.sock.nsmgr,
    NSM_CIDR_PREFIX: '172.16.1.100/31',
    NSM_SERVICE_NAMES: 'dataplane-interrupt',
    NSM_REGISTER_SERVICE: 'false',
    ...extra,
  };
}

export function seedNscEnv(mesh: Mesh, extra: Record<string, string> = {}): Record<string, string> {
  return { NSM_NAME: 'nsc-kernel-1', NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_NETWORK_SERVICES: 'kernel://dataplane-interrupt/nsm-1', ...extra };
}

/** `nsm apply -f netsvc.yaml` against the mesh's registry (plaintext, as these meshes are: see nodeProc). */
/** `nsm apply` of the seed's netsvc.yaml; plaintext unless `env` gives the command an identity (e.g. SPIFFE_ENDPOINT_SOCKET). */
export async function applyNetsvc(mesh: Mesh, env: Record<string, string> = { NSM_INSECURE: 'true' }): Promise<void> {
  await run(process.execPath, [MAIN, 'apply', '-f', NETSVC_YAML, '--registry-url', mesh.sock.registry], { env: { ...process.env, ...env } });
}

/** The seed: service applied, NSE in its pod, NSC in its pod; resolves when nsm-1 answers pings. */
export async function seed(
  t: TestContext,
  mesh: Mesh,
  opts: { nscEnv?: Record<string, string>; nseEnv?: Record<string, string>; applyEnv?: Record<string, string> } = {},
): Promise<Pods> {
  await applyNetsvc(mesh, opts.applyEnv);
  const nseNs = await netns(t, 'nse');
  const nscNs = await netns(t, 'nsc');
  const nse = nsm(t, mesh.dir, 'nse', ['nse'], seedNseEnv(mesh, opts.nseEnv), nseNs);
  await nse.waitLog(/endpoint registered/);
  const nsc = nsm(t, mesh.dir, 'nsc', ['nsc'], seedNscEnv(mesh, opts.nscEnv), nscNs);
  await nsc.waitLog(/connection established/);
  await waitFor('ping through nsm-1', () => ping(nscNs, '172.16.1.100'), 5000);
  return { nscNs, nseNs, nse, nsc };
}

/** A long-running `ping -i 0.2` whose loss is counted at `stop()`. */
export function pingCounter(t: TestContext, ns: string, addr: string, intervalS = 0.2) {
  const child = spawn('ip', ['netns', 'exec', ns, 'ping', '-n', '-i', String(intervalS), addr], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<void>((r) => child.once('exit', () => r()));
  defer(t, () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return {
    async stop(): Promise<{ sent: number; received: number; lost: number }> {
      child.kill('SIGINT');
      await exit;
      const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
      const sent = Number(m?.[1] ?? 0);
      const received = Number(m?.[2] ?? 0);
      return { sent, received, lost: sent - received };
    },
  };
}

/** Heal events the NSC logged (parsed JSON lines). */
export function healEvents(nsc: Proc): Array<{ type: string; action?: string; cause?: string; ms?: number }> {
  return nsc
    .log()
    .split('\n')
    .filter((l) => l.includes('"msg":"heal '))
    .map((l) => JSON.parse(l) as { type: string; action?: string; cause?: string; ms?: number });
}
