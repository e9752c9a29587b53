/**
 * Many connections for end-to-end tests at scale: one NSE with a large CIDR and NSC processes with up to
 * `perProc` NSURLs each (`kernel://scale/nsm-<j>`), as a user would try it. Counts from the NSC logs:
 * connections established, client retries, heal events. Built on the harness: every netns and process is
 * removed by the test that made it.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { defer, links, netns, nsm, sh, waitFor, type Mesh, type Proc } from './harness.js';

export const SCALE_SERVICE = 'scale';

export interface ScaleClients {
  readonly nse: Proc;
  readonly nseNs: string;
  readonly nscs: Array<{ proc: Proc; ns: string; count: number }>;
  /** `connection established` lines over all NSCs. */
  established(): number;
  /** How many times each connection id was logged as established (each should be once). */
  establishedById(): Map<string, number>;
  /** `request failed; retrying` lines over all NSCs. */
  retries(): number;
  /** Their errors, how often each (numbers masked so alike errors count together). */
  retryReasons(): Map<string, number>;
  /** `heal detected` lines over all NSCs (with no fault injected, every one is false). */
  healsDetected(): number;
  /** The `heal detected` events over all NSCs: which connection, why. */
  detections(): Array<{ connId: string; cause: string; detail: string }>;
  /** Links in the NSE netns other than lo (one per live connection). */
  nseLinks(): Promise<number>;
  /** SIGTERM every NSC at once; resolves with ms until all exited. */
  stopClients(): Promise<number>;
  /**
   * SIGTERM every NSC at once and wait up to `timeoutMs` for each to exit by itself (no SIGKILL meanwhile);
   * resolves with each one's exit code (undefined: still running at the timeout) and ms until it exited.
   */
  terminateClients(timeoutMs: number): Promise<Array<{ name: string; code: number | null | undefined; ms: number }>>;
  /** Links other than lo in each NSC netns (one per live connection of that NSC). */
  nscLinks(): Promise<number[]>;
}

const countIn = (procs: Proc[], re: RegExp): number => procs.reduce((s, p) => s + (p.log().match(re) ?? []).length, 0);

/** Pins every thread of process `pid` to the given CPUs (`taskset`): a way to overload on purpose. */
export async function pinToCpus(pid: number, cpus: string): Promise<void> {
  await sh('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
}

function establishedById(procs: Proc[]): Map<string, number> {
  const ids = new Map<string, number>();
  for (const p of procs) {
    for (const m of p.log().matchAll(/"connId":"([^"]+)"[^\n]*"msg":"connection established"/g)) ids.set(m[1]!, (ids.get(m[1]!) ?? 0) + 1);
  }
  return ids;
}

export interface ScaleOptions {
  readonly n: number;
  /** Connections per NSC process (default 50). */
  readonly perProc?: number;
  /** Start the NSC processes all at once (default) or one after another once each is connected. */
  readonly mode?: 'all' | 'batch';
  readonly nscEnv?: Record<string, string>;
  readonly nseEnv?: Record<string, string>;
  /** Log level of the NSCs (default info: debug logs of hundreds of connections cost CPU). */
  readonly nscLogLevel?: string;
  /** How long to wait for all connections (default 120 s). */
  readonly timeoutMs?: number;
  /** Pin each NSC process to these CPUs (`taskset -c` syntax) right after it starts. */
  readonly cpus?: string;
  /** Called once the NSE is registered, before the NSC processes start. */
  readonly beforeClients?: (nse: { nse: Proc; nseNs: string }) => void | Promise<void>;
}

/** Starts the NSE and the NSC processes; resolves when all `n` connections are established. */
export async function startScaleClients(t: TestContext, mesh: Mesh, o: ScaleOptions): Promise<ScaleClients> {
  const perProc = o.perProc ?? 50;
  const nseNs = await netns(t, 'nse');
  const nse = nsm(t, mesh.dir, 'nse', ['nse'], {
    NSM_CONNECT_TO: mesh.sock.nsmgr,
    NSM_NAME: 'nse-scale',
    NSM_SERVICE_NAMES: SCALE_SERVICE,
    NSM_REGISTER_SERVICE: 'true',
    NSM_CIDR_PREFIX: '10.80.0.0/16',
    NSM_LOG_LEVEL: 'info',
    ...o.nseEnv,
  }, nseNs);
  await nse.waitLog(/endpoint registered/);
  await o.beforeClients?.({ nse, nseNs });
  const nscs: ScaleClients['nscs'] = [];
  const procs = () => nscs.map((c) => c.proc);
  const established = () => countIn(procs(), /"msg":"connection established"/g);
  /** `waitFor`, its timeout naming the counts so far (a setup slowed by heals says so). */
  const waitCounting = async (what: string, done: () => boolean, timeoutMs: number) => {
    try {
      await waitFor(what, done, timeoutMs, 100);
    } catch (err) {
      const heals = countIn(procs(), /"msg":"heal detected"/g);
      const retries = countIn(procs(), /"msg":"request failed; retrying"/g);
      throw new Error(`${(err as Error).message}: ${established()} of ${o.n} established, ${retries} client retries, ${heals} heal detected events`, { cause: err });
    }
  };
  for (let i = 0; i * perProc < o.n; i++) {
    const count = Math.min(perProc, o.n - i * perProc);
    const ns = await netns(t, `nsc${i}`);
    const urls = Array.from({ length: count }, (_, j) => `kernel://${SCALE_SERVICE}/nsm-${j}`).join(',');
    const proc = nsm(t, mesh.dir, `nsc-${i}`, ['nsc'], {
      NSM_CONNECT_TO: mesh.sock.nsmgr,
      NSM_NAME: `nsc-${i}`,
      NSM_NETWORK_SERVICES: urls,
      NSM_LOG_LEVEL: o.nscLogLevel ?? 'info',
      ...o.nscEnv,
    }, ns);
    if (o.cpus !== undefined) await pinToCpus(proc.pid, o.cpus);
    nscs.push({ proc, ns, count });
    if (o.mode === 'batch') await waitCounting(`NSC ${i} connected`, () => established() >= i * perProc + count, o.timeoutMs ?? 120_000);
  }
  await waitCounting(`${o.n} connections`, () => established() >= o.n, o.timeoutMs ?? 120_000);
  return {
    nse,
    nseNs,
    nscs,
    established,
    establishedById: () => establishedById(procs()),
    retries: () => countIn(procs(), /"msg":"request failed; retrying"/g),
    retryReasons: () => {
      const reasons = new Map<string, number>();
      for (const p of procs()) {
        for (const m of p.log().matchAll(/"err":"([^"]*)"[^\n]*"msg":"request failed; retrying"/g)) {
          const key = m[1]!.replace(/\d+/g, 'N');
          reasons.set(key, (reasons.get(key) ?? 0) + 1);
        }
      }
      return reasons;
    },
    healsDetected: () => countIn(procs(), /"msg":"heal detected"/g),
    detections: () =>
      procs().flatMap((p) =>
        p
          .log()
          .split('\n')
          .filter((l) => l.includes('"msg":"heal detected"'))
          .map((l) => JSON.parse(l) as { connId: string; cause: string; detail: string })
          .map(({ connId, cause, detail }) => ({ connId, cause, detail })),
      ),
    nseLinks: async () => (await links(nseNs)).filter((l) => l.ifname !== 'lo').length,
    async stopClients() {
      const t0 = Date.now();
      await Promise.all(procs().map((p) => p.kill('SIGTERM')));
      return Date.now() - t0;
    },
    terminateClients: (timeoutMs) => terminate(procs(), timeoutMs),
    nscLinks: () => Promise.all(nscs.map(async (c) => (await links(c.ns)).filter((l) => l.ifname !== 'lo').length)),
  };
}

/** SIGTERM each of `procs` at once; each one's exit code (undefined if still running after `timeoutMs`) and ms. */
export async function terminate(procs: Proc[], timeoutMs: number): Promise<Array<{ name: string; code: number | null | undefined; ms: number }>> {
  const t0 = Date.now();
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  return Promise.all(
    procs.map(async (p) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)));
      const code = await Promise.race([p.exited(), timeout]);
      clearTimeout(timer);
      return { name: p.name, code, ms: Date.now() - t0 };
    }),
  );
}

/** The cpu controller's root: cgroup v2 (`cpu.max`) or v1 (`cpu.cfs_quota_us`); undefined when neither is writable here. */
function cpuCgroupRoot(): { root: string; v2: boolean } | undefined {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) {
    const ctl = readFileSync('/sys/fs/cgroup/cgroup.subtree_control', 'utf8');
    return ctl.split(/\s+/).includes('cpu') ? { root: '/sys/fs/cgroup', v2: true } : undefined;
  }
  return existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') ? { root: '/sys/fs/cgroup/cpu', v2: false } : undefined;
}

/**
 * Bounds `proc` (and the children it starts from now on) to `percent` % of one CPU with a cgroup of its
 * own, until the test ends (the process goes back to the root cgroup, the cgroup is removed). Returns
 * false (nothing changed) when no cpu cgroup can be made here.
 */
export function limitCpu(t: TestContext, proc: Proc, percent: number): boolean {
  const c = cpuCgroupRoot();
  if (!c) return false;
  const dir = `${c.root}/nsmt-cpu-${proc.pid}`;
  try {
    mkdirSync(dir);
  } catch {
    return false;
  }
  const period = 100_000;
  const quota = Math.max(1000, Math.round((period * percent) / 100));
  defer(t, async () => {
    for (let i = 0; i < 100; i++) {
      for (const pid of readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
        try {
          writeFileSync(`${c.root}/cgroup.procs`, pid);
        } catch {
          /* gone */
        }
      }
      try {
        rmdirSync(dir);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    rmdirSync(dir);
  });
  if (c.v2) writeFileSync(`${dir}/cpu.max`, `${quota} ${period}`);
  else {
    writeFileSync(`${dir}/cpu.cfs_period_us`, String(period));
    writeFileSync(`${dir}/cpu.cfs_quota_us`, String(quota));
  }
  writeFileSync(`${dir}/cgroup.procs`, String(proc.pid));
  return true;
}

