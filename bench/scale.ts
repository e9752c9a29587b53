/**
 * Scale: a node's worth of connections. For one N: a fresh mesh (registry, nsmgr, forwarder), one NSE with
 * a /16, and ceil(N / per-proc) `nsm nsc` processes in their own netns with up to `per-proc` NSURLs each
 * (`kernel://scale/nsm-<j>`) — how a user would try it. Phases, each with its baseline in the same run:
 * - setup: time until every connection is established (NSC logs), connections/s, client retries
 *   ("request failed; retrying"), heal events ("heal detected": there is no fault, so every one is false);
 *   then every connection pinged once through its interface ("up and pinging");
 * - Request latency at N: `--latency-samples` sequential extra Requests from the bench process (the
 *   request-latency method, bench/usable.ts) while the N connections exist; baseline: the same number of
 *   raw veth pairs into the NSE netns (next to its N interfaces) + the same usable check;
 * - at rest (`--rest` s): CPU % of one core of registry+nsmgr+forwarder, of the NSE, and of the NSC
 *   processes (children included: that is the liveness checking), heal events;
 * - memory: RSS of every component, `process.memoryUsage()` through bench/mem-probe.ts, and with
 *   `--heap-snapshot` a heap snapshot summary of nsmgr and forwarder (blocks them for seconds: taken last);
 * - teardown: SIGTERM to every NSC at once; time until all exited and until the NSE netns has no link
 *   left (bounded by 60 s), links left;
 * - raw baseline: the same N veth pairs made by hand (two `ip -batch` execs per pair, 10 at a time) →
 *   raw connections/s; then min(N, 50) plain `ping -i <liveness interval>` processes on those pairs for
 *   10 s → the CPU a process-per-connection raw ping costs, per connection, times N.
 *
 *   node dist/bench/scale.js [--n 10,100,300] [--mode batch|all] [--per-proc 50] [--timeout S] [--rest 15]
 *                            [--latency-samples 20] [--heap-snapshot] [--json FILE]
 */
import { spawn } from 'node:child_process';
import { createWriteStream, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nscConfig } from '../src/components/nsc/index.js';
import { summarizeHeap, type HeapSummary } from './heap.js';
import {
  addNs, argValue, CLK_TCK, benchDir, countAll, cpuPercent, delNs, descendants, execIn, fdCount, hasFlag, LogCounter, loadavgNow, machineInfo, memFigures,
  memProbeEnv, ms, nonLoLinks, progress, rssMiB, runBench, sleep, startMesh, startNse, startNsm, stats, table, treeTicks, waitUntil, wallNow, type Mesh, type Ns,
  type Proc, type Stats,
} from './lib.js';
import { nscSample, rawPair, rawSample } from './usable.js';

const SERVICE = 'scale';

export interface ScaleOptions {
  n: number;
  mode: 'batch' | 'all';
  perProc: number;
  /** Setup bound, ms. */
  timeoutMs: number;
  restS: number;
  latencySamples: number;
  heapSnapshot: boolean;
  /** Only setup, pinging, memory and teardown (for the all-at-once run next to a full batch run). */
  setupOnly: boolean;
}

export interface ScaleResult {
  n: number;
  mode: string;
  procs: number;
  upMs: number;
  setupTimedOut: boolean;
  established: number;
  connPerSec: number;
  pinging: number;
  retries: number;
  healsSetup: number;
  healsRest: number;
  latency?: { product: Stats; raw: Stats; failures: number };
  /** CPU time spent during setup per established connection, ms, by process tree (children included). */
  setupCpuMsPerConn: { registry: number; nsmgr: number; forwarder: number; nse: number; nscs: number };
  cpuRestPct?: { mesh: number; registry: number; nsmgr: number; forwarder: number; nse: number; nscs: number };
  rssMiB: { registry: number; nsmgr: number; forwarder: number; nse: number; nscMax: number; nscMean: number };
  mem: Record<string, NodeJS.MemoryUsage | undefined>;
  heap?: Record<string, HeapSummary>;
  childrenPerNsc: number;
  fdsPerNsc: number;
  teardown: { exitMs: number; linksGoneMs: number; linksLeft: number };
  raw?: { connPerSec: number; pingCpuPctPerConn: number; pingCpuPctAtN: number; pingProcs: number };
}

/** The NSC's default liveness interval, ms (from its config schema, so it cannot drift). */
export const livenessIntervalMs = (): number => nscConfig.parse({ NSM_INSECURE: 'true', NSM_NETWORK_SERVICES: 'kernel://x/nsm-1' }).livenessCheckInterval;

interface Clients {
  procs: Proc[];
  logs: LogCounter[];
  nets: Ns[];
  upMs: number;
  ok: boolean;
}

async function startClients(mesh: Mesh, o: ScaleOptions, env: Record<string, string>): Promise<Clients> {
  const c: Clients = { procs: [], logs: [], nets: [], upMs: 0, ok: true };
  const established = () => countAll(c.logs, 'connection established');
  const t0 = wallNow();
  const left = () => Math.max(1000, o.timeoutMs - (wallNow() - t0));
  for (let i = 0; i * o.perProc < o.n; i++) {
    const k = Math.min(o.perProc, o.n - i * o.perProc);
    const ns = await addNs('nsc');
    c.nets.push(ns);
    const urls = Array.from({ length: k }, (_, j) => `kernel://${SERVICE}/nsm-${j}`).join(',');
    const p = startNsm(mesh.dir, `nsc-${i}`, ['nsc'], { ...env, NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_NAME: `nsc-${i}`, NSM_NETWORK_SERVICES: urls }, ns);
    c.procs.push(p);
    c.logs.push(new LogCounter(p.logFile));
    if (o.mode === 'batch') c.ok = (await waitUntil(`batch ${i}`, () => established() >= i * o.perProc + k, left())) && c.ok;
    if (!c.ok) break;
  }
  if (c.ok) c.ok = await waitUntil('all connections', () => established() >= o.n, left());
  c.upMs = wallNow() - t0;
  return c;
}

/** Pings every connection's NSE address once through its interface (routes `dev nsm-*` of each client netns). */
export async function pingAll(nets: Ns[]): Promise<number> {
  let ok = 0;
  for (const ns of nets) {
    const rs = JSON.parse(await execIn(ns.path, ['ip', '-j', 'route', 'show'])) as Array<{ dst: string; dev: string }>;
    const dsts = rs.filter((r) => r.dev.startsWith('nsm-')).map((r) => r.dst.split('/')[0]!);
    if (!dsts.length) continue;
    const script = 'for d in "$@"; do (ping -n -q -c 1 -W 2 "$d" >/dev/null 2>&1 && echo ok) & done; wait';
    const out = await execIn(ns.path, ['sh', '-c', script, 'sh', ...dsts]).catch(() => '');
    ok += (out.match(/ok/g) ?? []).length;
  }
  return ok;
}

async function latencyAtN(mesh: Mesh, nseNs: Ns, samples: number, budgetMs: number): Promise<ScaleResult['latency']> {
  const log = createWriteStream(join(mesh.dir, 'nsc-inproc.log'));
  const product: number[] = [];
  const raw: number[] = [];
  let failures = 0;
  const until = wallNow() + budgetMs;
  for (let i = 0; i < samples && wallNow() < until; i++) {
    try {
      product.push((await nscSample(mesh, i, log, `kernel://${SERVICE}/nsm-1`, { timeoutMs: Math.min(30_000, Math.max(1000, until - wallNow())) })).usable);
    } catch (err) {
      failures++;
      progress(`  extra Request ${i} failed: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  for (let i = 0; i < samples; i++) raw.push((await rawSample(60_000 + i, nseNs)).usable);
  log.end();
  return { product: stats(product), raw: stats(raw), failures };
}

async function memoryAtN(mesh: Mesh, nse: Proc, c: Clients, heapSnapshot: boolean): Promise<Pick<ScaleResult, 'rssMiB' | 'mem' | 'heap' | 'childrenPerNsc' | 'fdsPerNsc'>> {
  const live = c.procs.filter((p) => p.child.exitCode === null);
  const nscRss = live.map((p) => rssMiB(p.pid)).filter(Number.isFinite);
  const rss = {
    registry: rssMiB(mesh.procs.registry.pid), nsmgr: rssMiB(mesh.procs.nsmgr.pid), forwarder: rssMiB(mesh.procs.forwarder.pid), nse: rssMiB(nse.pid),
    nscMax: nscRss.length ? Math.max(...nscRss) : NaN, nscMean: nscRss.reduce((s, x) => s + x, 0) / Math.max(1, nscRss.length),
  };
  const childrenPerNsc = live.reduce((s, p) => s + descendants(p.pid).length, 0) / Math.max(1, live.length);
  const fdsPerNsc = live.reduce((s, p) => s + fdCount(p.pid), 0) / Math.max(1, live.length);
  const targets: Array<[string, Proc | undefined]> = [['registry', mesh.procs.registry], ['nsmgr', mesh.procs.nsmgr], ['forwarder', mesh.procs.forwarder], ['nse', nse], ['nsc-0', live[0]]];
  const mem: ScaleResult['mem'] = {};
  for (const [name, p] of targets) if (p) mem[name] = (await memFigures(p.pid, mesh.dir))?.usage;
  let heap: ScaleResult['heap'];
  if (heapSnapshot) {
    heap = {};
    for (const name of ['nsmgr', 'forwarder'] as const) {
      progress(`  heap snapshot of ${name}…`);
      const f = await memFigures(mesh.procs[name].pid, mesh.dir, true, 120_000);
      if (!f?.snapshot) continue;
      try {
        heap[name] = summarizeHeap(f.snapshot);
      } catch (err) {
        progress(`  heap snapshot of ${name}: ${(err as Error).message}`);
      }
      rmSync(f.snapshot, { force: true });
    }
  }
  return { rssMiB: rss, mem, heap, childrenPerNsc, fdsPerNsc };
}

async function teardown(c: Clients, nseNs: Ns): Promise<ScaleResult['teardown']> {
  const td0 = wallNow();
  for (const p of c.procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  await waitUntil('NSC exit', () => c.procs.every((p) => p.child.exitCode !== null || p.child.signalCode !== null), 60_000);
  const exitMs = wallNow() - td0;
  await waitUntil('NSE netns empty', async () => (await nonLoLinks(nseNs)).length === 0, Math.max(1000, 60_000 - exitMs), 250);
  const linksGoneMs = wallNow() - td0;
  const linksLeft = (await nonLoLinks(nseNs)).length;
  for (const p of c.procs) await p.kill('SIGKILL');
  return { exitMs, linksGoneMs, linksLeft };
}

/**
 * Raw baseline in `nseNs` (emptied first): N veth pairs by hand, 10 at a time, from one client netns per
 * 50 → connections/s; then ping processes at the liveness interval on the first min(N, 50) pairs for 10 s.
 */
async function rawBaseline(n: number, nseNs: Ns): Promise<NonNullable<ScaleResult['raw']>> {
  for (const l of await nonLoLinks(nseNs)) await execIn(nseNs.path, ['ip', 'link', 'del', l]).catch(() => undefined);
  const clients: Ns[] = [];
  for (let i = 0; i < Math.ceil(n / 50); i++) clients.push(await addNs('rawc'));
  const addr = (i: number, end: number) => `10.82.${Math.floor(i / 128)}.${(i % 128) * 2 + end}`;
  const t0 = wallNow();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await rawPair(clients[Math.floor(i / 50)]!, nseNs, `nsm-${i % 50}`, `raw-${i}`, addr(i, 1), addr(i, 0));
  };
  await Promise.all(Array.from({ length: 10 }, worker));
  const connPerSec = (n * 1000) / (wallNow() - t0);
  const k = Math.min(n, 50);
  const interval = (livenessIntervalMs() / 1000).toFixed(3);
  const pings = Array.from({ length: k }, (_, i) => spawn('ip', ['netns', 'exec', clients[0]!.name, 'ping', '-n', '-q', '-i', interval, addr(i, 0)], { stdio: 'ignore' }));
  await sleep(1000);
  const [pct] = await cpuPercent([pings.map((p) => p.pid!)], () => sleep(10_000));
  for (const p of pings) p.kill('SIGKILL');
  for (const c of clients) await delNs(c);
  const perConn = pct! / k;
  return { connPerSec, pingCpuPctPerConn: perConn, pingCpuPctAtN: perConn * n, pingProcs: k };
}

async function restAtN(mesh: Mesh, nse: Proc, c: Clients, restS: number): Promise<{ cpu: NonNullable<ScaleResult['cpuRestPct']>; heals: number }> {
  const heals0 = countAll(c.logs, 'heal detected');
  const { registry, nsmgr, forwarder } = mesh.procs;
  const [r, m, f, e, s] = await cpuPercent([[registry.pid], [nsmgr.pid], [forwarder.pid], [nse.pid], c.procs.map((p) => p.pid)], () => sleep(restS * 1000));
  return { cpu: { mesh: r! + m! + f!, registry: r!, nsmgr: m!, forwarder: f!, nse: e!, nscs: s! }, heals: countAll(c.logs, 'heal detected') - heals0 };
}

/** One N, start to finish; everything it made is gone when it returns. */
export async function runScale(o: ScaleOptions): Promise<ScaleResult> {
  const dir = benchDir(`scale-${o.n}`);
  const probe = memProbeEnv(dir);
  const mesh = await startMesh(dir, {}, probe);
  const nseNs = await addNs('nse');
  const nse = await startNse(mesh, nseNs, { ...probe, NSM_SERVICE_NAMES: SERVICE, NSM_CIDR_PREFIX: '10.80.0.0/16', NSM_NAME: 'nse-scale' });
  progress(`scale N=${o.n} ${o.mode === 'batch' ? `${o.perProc} at a time` : 'all at once'}: ${Math.ceil(o.n / o.perProc)} NSC processes (loadavg ${loadavgNow()})`);
  const meshProcs = { registry: mesh.procs.registry.pid, nsmgr: mesh.procs.nsmgr.pid, forwarder: mesh.procs.forwarder.pid, nse: nse.pid };
  const ticks0 = Object.fromEntries(Object.entries(meshProcs).map(([k, pid]) => [k, treeTicks(pid)]));
  const c = await startClients(mesh, o, probe);
  const established = countAll(c.logs, 'connection established');
  const perConnMs = (ticks: number) => (ticks / CLK_TCK) * 1000 / Math.max(1, established);
  const setupCpuMsPerConn = {
    ...Object.fromEntries(Object.entries(meshProcs).map(([k, pid]) => [k, perConnMs(treeTicks(pid) - ticks0[k]!)])),
    nscs: perConnMs(c.procs.reduce((sum, p) => sum + treeTicks(p.pid), 0)),
  } as ScaleResult['setupCpuMsPerConn'];
  const retries = countAll(c.logs, 'request failed; retrying');
  const healsSetup = countAll(c.logs, 'heal detected');
  progress(`  ${established}/${o.n} up in ${ms(c.upMs / 1000)} s (${ms((established * 1000) / c.upMs)}/s)${c.ok ? '' : ' (TIMED OUT)'}; retries ${retries}; heals ${healsSetup}`);
  const pinging = await pingAll(c.nets);
  progress(`  pinging: ${pinging}/${o.n}`);
  progress(`  setup CPU ms per connection: ${Object.entries(setupCpuMsPerConn).map(([k, v]) => `${k} ${ms(v)}`).join(', ')}`);
  let latency: ScaleResult['latency'];
  let rest: Awaited<ReturnType<typeof restAtN>> | undefined;
  if (!o.setupOnly) {
    latency = await latencyAtN(mesh, nseNs, o.latencySamples, 60_000);
    progress(`  Request latency at N: p50 ${ms(latency!.product.p50)} ms (raw ${ms(latency!.raw.p50)} ms), ${latency!.failures} failed`);
    rest = await restAtN(mesh, nse, c, o.restS);
    progress(`  rest ${o.restS} s: CPU % mesh ${ms(rest.cpu.mesh)} (registry ${ms(rest.cpu.registry)}, nsmgr ${ms(rest.cpu.nsmgr)}, forwarder ${ms(rest.cpu.forwarder)}), NSE ${ms(rest.cpu.nse)}, NSCs ${ms(rest.cpu.nscs)}; heals ${rest.heals}`);
  }
  const memory = await memoryAtN(mesh, nse, c, o.heapSnapshot);
  progress(`  RSS MiB nsmgr ${ms(memory.rssMiB.nsmgr, 0)}, forwarder ${ms(memory.rssMiB.forwarder, 0)}, NSC max ${ms(memory.rssMiB.nscMax, 0)}`);
  const td = await teardown(c, nseNs);
  progress(`  teardown: exited in ${ms(td.exitMs / 1000)} s, ${td.linksLeft} links left after ${ms(td.linksGoneMs / 1000)} s`);
  for (const ns of c.nets) await delNs(ns);
  await nse.kill();
  for (const comp of ['forwarder', 'nsmgr', 'registry'] as const) await mesh.procs[comp].kill();
  const raw = o.setupOnly ? undefined : await rawBaseline(o.n, nseNs);
  if (raw) progress(`  raw: ${ms(raw.connPerSec)} pairs/s; ${raw.pingProcs} ping processes ${ms(raw.pingCpuPctPerConn, 2)} % each`);
  await delNs(nseNs);
  return {
    n: o.n, mode: o.mode, procs: c.procs.length, upMs: c.upMs, setupTimedOut: !c.ok, established, connPerSec: (established * 1000) / c.upMs, pinging,
    retries, healsSetup, healsRest: rest?.heals ?? NaN, setupCpuMsPerConn, latency, cpuRestPct: rest?.cpu, ...memory, teardown: td, raw,
  };
}

export function scaleTable(results: ScaleResult[]): string {
  return table(
    ['N', 'mode', 'up / pinging', 'up in s', 'conn/s (raw)', 'retries', 'heals setup / rest', 'Request p50 ms (raw)', 'CPU rest % mesh / NSCs (raw ping)', 'RSS MiB nsmgr / fwd / NSC max', 'teardown s, links left'],
    results.map((r) => [
      r.n, r.mode, `${r.established} / ${r.pinging}`, `${ms(r.upMs / 1000)}${r.setupTimedOut ? ' (timeout)' : ''}`,
      `${ms(r.connPerSec)}${r.raw ? ` (${ms(r.raw.connPerSec)})` : ''}`, r.retries, `${r.healsSetup} / ${Number.isFinite(r.healsRest) ? r.healsRest : '-'}`,
      r.latency ? `${ms(r.latency.product.p50)} (${ms(r.latency.raw.p50)})` : '-',
      r.cpuRestPct ? `${ms(r.cpuRestPct.mesh)} / ${ms(r.cpuRestPct.nscs)} (${ms(r.raw?.pingCpuPctAtN ?? NaN)})` : '-',
      `${ms(r.rssMiB.nsmgr, 0)} / ${ms(r.rssMiB.forwarder, 0)} / ${ms(r.rssMiB.nscMax, 0)}`, `${ms(r.teardown.linksGoneMs / 1000)}, ${r.teardown.linksLeft}`,
    ]),
  );
}

/** Setup bound for N connections: 30 s, or 0.1 s per connection (10/s) when that is longer. */
export const setupTimeoutMs = (n: number): number => Math.max(30_000, n * 100);

if (process.argv[1]?.endsWith('/scale.js')) {
  runBench(async () => {
    const ns = argValue('n', '10,100,300').split(',').map(Number);
    const mode = argValue('mode', 'batch') === 'all' ? 'all' : 'batch';
    const json = argValue('json', '');
    console.log(machineInfo());
    const results: ScaleResult[] = [];
    for (const n of ns) {
      results.push(await runScale({
        n, mode, perProc: Number(argValue('per-proc', '50')), timeoutMs: Number(argValue('timeout', String(setupTimeoutMs(n) / 1000))) * 1000,
        restS: Number(argValue('rest', '15')), latencySamples: Number(argValue('latency-samples', '20')), heapSnapshot: hasFlag('heap-snapshot'), setupOnly: false,
      }));
    }
    console.log(scaleTable(results));
    console.log(`loadavg at end ${loadavgNow()}`);
    if (json) writeFileSync(json, JSON.stringify({ machine: machineInfo(), results }, null, 2));
  });
}
