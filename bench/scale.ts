/**
 * Scale: a node's worth of connections. For each N: a fresh mesh (registry, nsmgr, forwarder), one NSE
 * with a /16, and ceil(N / per-proc) `nsm nsc` processes in their own netns with up to `per-proc` NSURLs
 * each (`kernel://scale/nsm-<j>`) — how a user would try it. Measures:
 * - setup: time until every connection is established (from the NSC logs), connections/s, client retries
 *   ("request failed; retrying"), heal events ("heal detected") — there is no fault, so any is false;
 * - at rest (`--rest` s, nothing happening): heal events, CPU % of registry+nsmgr+forwarder and of the NSCs
 *   (children included), RSS of each component;
 * - teardown: SIGTERM to every NSC at once; time until all exited and until the NSE netns has no link
 *   left (bounded by 60 s), links left.
 * Baseline in the same run: the raw kernel work for the same N interfaces (veth pair with peer in the NSE
 * netns, address and link route per end: the same two `ip -batch` execs per pair the data plane does),
 * sequential and `--raw-concurrency` at a time.
 *
 *   node dist/bench/scale.js [--n 10,100,300] [--mode batch|all] [--per-proc 50] [--timeout 240] [--rest 10] [--json FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import {
  addNs, argValue, benchDir, delNs, execIn, loadavgNow, machineInfo, ms, nonLoLinks, runBench, sleep, startMesh, startNse, startNsm,
  table, wallNow, type Mesh, type Ns, type Proc,
} from './lib.js';

const SERVICE = 'scale';
const CLK_TCK = 100;

interface ScaleResult {
  n: number;
  mode: string;
  procs: number;
  upMs: number;
  established: number;
  connPerSec: number;
  retries: number;
  healsSetup: number;
  healsRest: number;
  cpuRestPct: { mesh: number; nscs: number };
  rssMiB: Record<string, number>;
  nscRssMiB: number;
  teardownExitMs: number;
  teardownLinksGoneMs: number;
  linksLeft: number;
  rawCreateMs: number;
  rawConcurrentMs: number;
}

/** utime+stime (ticks) of a process and its reaped children. */
function cpuTicks(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  } catch {
    return 0;
  }
}

/** Live descendants of `pid` (children of children …), for CPU of child processes that are still running. */
function descendants(pid: number): number[] {
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

const treeTicks = (pid: number): number => [pid, ...descendants(pid)].reduce((s, p) => s + cpuTicks(p), 0);

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

const count = (p: Proc, re: RegExp): number => (p.log().match(re) ?? []).length;

/** The raw kernel work for `n` interfaces into `nse`: two `ip -batch` execs per pair, `conc` pairs at a time. */
async function rawKernel(n: number, conc: number, nse: Ns): Promise<number> {
  const clients: Ns[] = [];
  for (let i = 0; i < Math.ceil(n / 50); i++) clients.push(await addNs('rawc'));
  const t0 = wallNow();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const c = clients[Math.floor(i / 50)]!;
      const j = i % 50;
      const a = `10.81.${Math.floor(i / 128)}.${(i % 128) * 2}`;
      const b = `10.81.${Math.floor(i / 128)}.${(i % 128) * 2 + 1}`;
      await execIn(c.path, ['ip', '-batch', '-'], `link add nsm-${j} type veth peer name raw-${i} netns ${nse.path}\naddr add ${b}/32 dev nsm-${j}\nlink set dev nsm-${j} up\nroute replace ${a}/32 dev nsm-${j} scope link\n`);
      await execIn(nse.path, ['ip', '-batch', '-'], `addr add ${a}/32 dev raw-${i}\nlink set dev raw-${i} up\nroute replace ${b}/32 dev raw-${i} scope link\n`);
    }
  };
  await Promise.all(Array.from({ length: conc }, worker));
  const took = wallNow() - t0;
  for (const c of clients) await delNs(c);
  return took;
}

async function waitUntil(what: string, fn: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const until = wallNow() + timeoutMs;
  while (wallNow() < until) {
    if (await fn()) return true;
    await sleep(everyMs);
  }
  process.stderr.write(`  gave up waiting for ${what} after ${timeoutMs} ms\n`);
  return false;
}

async function startClients(mesh: Mesh, n: number, perProc: number, mode: string, timeoutMs: number): Promise<{ procs: Proc[]; nets: Ns[]; upMs: number; ok: boolean }> {
  const procs: Proc[] = [];
  const nets: Ns[] = [];
  const established = () => procs.reduce((s, p) => s + count(p, /"msg":"connection established"/g), 0);
  const t0 = wallNow();
  let ok = true;
  for (let i = 0; i * perProc < n; i++) {
    const k = Math.min(perProc, n - i * perProc);
    const ns = await addNs('nsc');
    nets.push(ns);
    const urls = Array.from({ length: k }, (_, j) => `kernel://${SERVICE}/nsm-${j}`).join(',');
    procs.push(startNsm(mesh.dir, `nsc-${i}`, ['nsc'], { NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_NAME: `nsc-${i}`, NSM_NETWORK_SERVICES: urls }, ns));
    if (mode === 'batch') ok = (await waitUntil(`batch ${i}`, () => established() >= i * perProc + k, Math.max(1000, timeoutMs - (wallNow() - t0)))) && ok;
  }
  ok = (await waitUntil('all connections', () => established() >= n, Math.max(1000, timeoutMs - (wallNow() - t0)))) && ok;
  return { procs, nets, upMs: wallNow() - t0, ok };
}

async function runOne(n: number, mode: string, perProc: number, timeoutMs: number, restS: number): Promise<ScaleResult> {
  const dir = benchDir(`scale-${n}`);
  const mesh = await startMesh(dir);
  const nseNs = await addNs('nse');
  const nse = await startNse(mesh, nseNs, { NSM_SERVICE_NAMES: SERVICE, NSM_CIDR_PREFIX: '10.80.0.0/16', NSM_NAME: 'nse-scale' });
  const meshPids = [mesh.procs.registry.pid, mesh.procs.nsmgr.pid, mesh.procs.forwarder.pid, nse.pid];

  process.stderr.write(`N=${n} ${mode}: starting ${Math.ceil(n / perProc)} NSC processes… (loadavg ${loadavgNow()})\n`);
  const { procs, nets, upMs, ok } = await startClients(mesh, n, perProc, mode, timeoutMs);
  const established = procs.reduce((s, p) => s + count(p, /"msg":"connection established"/g), 0);
  const retries = procs.reduce((s, p) => s + count(p, /"msg":"request failed; retrying"/g), 0);
  const healsSetup = procs.reduce((s, p) => s + count(p, /"msg":"heal detected"/g), 0);
  process.stderr.write(`  ${established}/${n} up in ${ms(upMs / 1000, 1)} s${ok ? '' : ' (timed out)'}; retries ${retries}; heals ${healsSetup}\n`);

  const rss = { registry: rssMiB(mesh.procs.registry.pid), nsmgr: rssMiB(mesh.procs.nsmgr.pid), forwarder: rssMiB(mesh.procs.forwarder.pid), nse: rssMiB(nse.pid) };
  const nscPids = procs.map((p) => p.pid);
  const meshT0 = meshPids.reduce((s, p) => s + treeTicks(p), 0);
  const nscT0 = nscPids.reduce((s, p) => s + treeTicks(p), 0);
  const r0 = wallNow();
  await sleep(restS * 1000);
  const restMs = wallNow() - r0;
  const pct = (ticks: number) => ((ticks / CLK_TCK) * 1000 * 100) / restMs;
  const cpuRestPct = { mesh: pct(meshPids.reduce((s, p) => s + treeTicks(p), 0) - meshT0), nscs: pct(nscPids.reduce((s, p) => s + treeTicks(p), 0) - nscT0) };
  const healsRest = procs.reduce((s, p) => s + count(p, /"msg":"heal detected"/g), 0) - healsSetup;
  const nscRss = nscPids.map(rssMiB).filter(Number.isFinite);
  process.stderr.write(`  rest ${restS} s: heals ${healsRest}, CPU mesh ${ms(cpuRestPct.mesh)} % nscs ${ms(cpuRestPct.nscs)} %\n`);

  const td0 = wallNow();
  await Promise.all(procs.map((p) => p.child.exitCode === null && p.child.kill('SIGTERM')));
  await waitUntil('NSC exit', () => procs.every((p) => p.child.exitCode !== null || p.child.signalCode !== null), 60_000);
  const teardownExitMs = wallNow() - td0;
  await waitUntil('NSE netns empty', async () => (await nonLoLinks(nseNs)).length === 0, 60_000, 250);
  const teardownLinksGoneMs = wallNow() - td0;
  const linksLeft = (await nonLoLinks(nseNs)).length;
  process.stderr.write(`  teardown: exited in ${ms(teardownExitMs / 1000)} s, ${linksLeft} links left after ${ms(teardownLinksGoneMs / 1000)} s\n`);
  for (const p of procs) await p.kill('SIGKILL');
  for (const ns of nets) await delNs(ns);

  await nse.kill();
  for (const l of await nonLoLinks(nseNs)) await execIn(nseNs.path, ['ip', 'link', 'del', l]).catch(() => undefined);
  const rawCreateMs = await rawKernel(n, 1, nseNs);
  for (const l of await nonLoLinks(nseNs)) await execIn(nseNs.path, ['ip', 'link', 'del', l]).catch(() => undefined);
  const rawConcurrentMs = await rawKernel(n, 10, nseNs);
  await delNs(nseNs);
  for (const c of ['forwarder', 'nsmgr', 'registry'] as const) await mesh.procs[c].kill();
  return {
    n, mode, procs: procs.length, upMs, established, connPerSec: (established * 1000) / upMs, retries, healsSetup, healsRest, cpuRestPct,
    rssMiB: rss, nscRssMiB: nscRss.length ? Math.max(...nscRss) : NaN, teardownExitMs, teardownLinksGoneMs, linksLeft, rawCreateMs, rawConcurrentMs,
  };
}

runBench(async () => {
  const ns = argValue('n', '10,100,300').split(',').map(Number);
  const mode = argValue('mode', 'batch');
  const perProc = Number(argValue('per-proc', '50'));
  const timeoutMs = Number(argValue('timeout', '240')) * 1000;
  const restS = Number(argValue('rest', '10'));
  const json = argValue('json', '');
  console.log(machineInfo());
  const results: ScaleResult[] = [];
  for (const n of ns) results.push(await runOne(n, mode, perProc, timeoutMs, restS));
  console.log(`\nscale, mode ${mode} (${mode === 'batch' ? `${perProc} at a time` : 'all at once'}), ${perProc} connections per NSC process`);
  console.log(table(
    ['N', 'up', 'up in s', 'conn/s', 'raw kernel conn/s (seq / 10 conc)', 'retries', 'heals setup / rest', 'CPU rest % mesh / NSCs', 'RSS MiB nsmgr / fwd / reg', 'NSC RSS MiB max', 'teardown exit / links gone s', 'links left'],
    results.map((r) => [
      r.n, r.established, ms(r.upMs / 1000), ms(r.connPerSec), `${ms((r.n * 1000) / r.rawCreateMs)} / ${ms((r.n * 1000) / r.rawConcurrentMs)}`, r.retries,
      `${r.healsSetup} / ${r.healsRest}`, `${ms(r.cpuRestPct.mesh)} / ${ms(r.cpuRestPct.nscs)}`,
      `${ms(r.rssMiB.nsmgr!, 0)} / ${ms(r.rssMiB.forwarder!, 0)} / ${ms(r.rssMiB.registry!, 0)}`, ms(r.nscRssMiB, 0),
      `${ms(r.teardownExitMs / 1000)} / ${ms(r.teardownLinksGoneMs / 1000)}`, r.linksLeft,
    ]),
  ));
  console.log(`loadavg at end ${loadavgNow()}`);
  if (json) writeFileSync(json, JSON.stringify({ machine: machineInfo(), mode, perProc, results }, null, 2));
});
