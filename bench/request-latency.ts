/**
 * Request latency: from an NSC Request to a *usable* kernel interface, p50/p95 over N connections,
 * sequential and C concurrent, with the raw kernel work for one connection measured in the same run.
 *
 *   node dist/bench/request-latency.js [--n 200] [--concurrency 10] [--process-n 20] [--refreshes 3] [--cpu-refreshes 100] [--secure | --insecure]
 *
 * Security: by default two meshes run side by side in the same run, one with NSM_INSECURE=true and one
 * with mTLS and ES256 path tokens (every process an SVID from a Workload API of the bench, the in-process
 * NSC an SVID made before its clock starts: bench/secure.ts); the sequential samples alternate between
 * them, the concurrent and process phases run back to back. The comparison judges the cost target
 * (sequential usable p50 secure / insecure ≤ 1.2). `--secure` or `--insecure` runs one mesh only.
 * Refresh CPU: then one more connection per mesh is refreshed `--cpu-refreshes` times (default 100) and the
 * CPU of registry, nsmgr, forwarder and NSE (/proc, with descendants) and of the bench process over those
 * refreshes is divided by their number: a handshake per refresh would show as its CPU (bench/mtls-cost.ts).
 * Refresh: after each sequential sample is usable, `--refreshes` re-Requests of the established connection
 * on one new channel (update-path with the NSC's identity … connect, as the NSC's refresh): the first
 * includes dialling (and the handshake when secure), the others show a refresh on an established channel.
 *
 * Topology: one registry, nsmgr and forwarder (processes, started once); one NSE (icmp responder,
 * process) in netns `nsmb-nse-*` with NSM_CIDR_PREFIX=10.80.0.0/16; per sample a fresh client netns
 * `nsmb-c-*`. The client is the project's own NSC (`startNsc`, the chain of `nsm nsc`) run in this
 * process and given the client netns as its kernel-mechanism netns URL (`inode://dev/ino`), with no
 * data-plane probe (liveness off). The clock starts at `startNsc()` (which first asks nsmgr whether a
 * connection with this id exists to adopt — one monitor RPC — then sends the Request) and stops when the
 * interface is usable. After each sample the NSC Closes and the netns is deleted (not timed).
 *
 * "Usable" = in the client netns, `ip -j addr show dev nsm-1` shows the link with flags UP and LOWER_UP
 * and the connection's src address (e.g. 10.80.0.1/32), AND `ping -c1 -i0.01 -w2 <dst>` (resending every
 * 10 ms until the first reply) gets a reply from the NSE's address. The check is polled (2 ms apart)
 * until it passes; its own cost is measured too ("verify only", on an interface already usable).
 *
 * Baseline ("raw"): the same kernel end state made by hand — rawPair from bench/usable.ts (veth
 * with its peer in a second netns, one address + one link route per end, two `ip -batch` execs) —
 * followed by the same usable check, sequential and with C pairs in parallel.
 *
 * Process mode (--process-n, default 20, sequential): `ip netns exec <ns> node dist/src/cli/main.js nsc`,
 * from spawn to the "connection established" log line and to usable, next to a bare `node -e 0` start.
 */
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { createClient } from 'nice-grpc';
import { MonitorConnectionDefinition, type MonitorConnectionClient } from '../src/api/gen/connection.js';
import { ChannelPool } from '../src/core/transport.js';
import { MAX_REFRESHES, nscSample, rawSample, waitUsable, type Sample } from './usable.js';
import {
  addNs, argValue, benchDir, delNs, idEnv, leftoverNs, loadavgNow, nonLoLinks, machineInfo, MAIN, ms, numArg, runBench, startMesh, startNse,
  stats, table, wallNow, type Mesh, type Ns, type Stats,
} from './lib.js';
import { createLogger } from '../src/core/log.js';
import type { TransportSecurity } from '../src/security/tls.js';
import { BenchIdentities, sampleIdentity, securityModes } from './secure.js';

const N = Number(argValue('n', '200'));
const C = Number(argValue('concurrency', '10'));
const PROCESS_N = Number(argValue('process-n', '20'));
const REFRESHES = numArg('refreshes', 3, 0, 100);
/** Refreshes of one connection per mesh with the mesh's CPU added up (one long window: /proc ticks are 10 ms). */
const CPU_REFRESHES = numArg('cpu-refreshes', 100, 0, MAX_REFRESHES);
const MODES = securityModes();
const SERVICE = 'kernel://dataplane-interrupt/nsm-1';
/** The cost target of mTLS and tokens: sequential usable p50, secure / insecure. */
const SECURE_RATIO_TARGET = 1.2;

/** What startNsc does before its Request: a fresh channel to nsmgr and one MonitorConnections event (adopt check). */
async function adoptSample(mesh: Mesh, i: number, security: TransportSecurity): Promise<number> {
  const t0 = wallNow();
  const pool = new ChannelPool(security);
  try {
    const client = createClient(MonitorConnectionDefinition, pool.get(mesh.sock.nsmgr)) as MonitorConnectionClient;
    const ac = new AbortController();
    const sel = { pathSegments: [{ id: `nsca-${i}-0`, name: `nsca-${i}`, token: '', expires: undefined, metrics: {} }], networkServices: [] };
    for await (const _ of client.monitorConnections(sel, { signal: ac.signal })) break;
    return wallNow() - t0;
  } finally {
    pool.close();
  }
}

/** Runs `n` jobs with at most `c` in flight. */
async function pool<T>(n: number, c: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(c, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await job(i);
      }
    }),
  );
  return out;
}

async function processSample(mesh: Mesh, i: number): Promise<{ started: number; established: number; usable: number }> {
  const ns = await addNs('p');
  const ids = await idEnv(mesh, `nscp-${i}`);
  const t0 = wallNow();
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, MAIN, 'nsc'], {
    env: { ...process.env, NSM_LOG_LEVEL: 'info', NSM_INSECURE: 'true', NSM_NAME: `nscp-${i}`, NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_NETWORK_SERVICES: SERVICE, NSM_LIVENESS_CHECK_ENABLED: 'false', ...ids },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    let started = NaN;
    const established = await new Promise<{ at: number; src: string; dst: string }>((res, rej) => {
      let buf = '';
      const timer = setTimeout(() => rej(new Error(`nsc process ${i}: no "connection established" in 15 s:\n${buf.slice(-2000)}`)), 15_000);
      const onData = (b: Buffer) => {
        const at = wallNow();
        buf += b.toString();
        if (Number.isNaN(started) && buf.includes('starting; effective configuration')) started = at;
        const m = /"src":\["([^"]+)"\],"dst":\["([^"]+)"\].*"msg":"connection established"/.exec(buf);
        if (m) {
          clearTimeout(timer);
          res({ at, src: m[1]!, dst: m[2]! });
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', () => rej(new Error(`nsc process ${i} exited:\n${buf.slice(-2000)}`)));
    });
    await waitUsable(ns, 'nsm-1', established.src, established.dst.split('/')[0]!);
    const t2 = wallNow();
    return { started: started - t0, established: established.at - t0, usable: t2 - t0 };
  } finally {
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 8000);
    await exited;
    clearTimeout(t);
    await delNs(ns);
  }
}

async function nodeBare(ns: Ns): Promise<number> {
  const t0 = wallNow();
  await new Promise<void>((res, rej) => {
    const c = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '-e', '0'], { stdio: 'ignore' });
    c.once('exit', (code) => (code === 0 ? res() : rej(new Error(`node -e 0: exit ${code}`))));
  });
  return wallNow() - t0;
}

const row = (name: string, s: Stats, extra = '') => [name, s.n, ms(s.p50), ms(s.p95), ms(s.max), extra];

type Mode = 'insecure' | 'secure';
type ProcSample = { started: number; established: number; usable: number };

/** One mesh of the run and what was measured on it. */
interface MeshRun {
  readonly mode: Mode;
  readonly mesh: Mesh;
  readonly nseNs: Ns;
  readonly pids: number[];
  adopt: number[];
  /** The CPU-window sample: CPU_REFRESHES refreshes of one connection. */
  cpu?: Sample;
  seq: Sample[];
  par: Sample[];
  parWall: number;
  proc: ProcSample[];
}

async function startRun(mode: Mode): Promise<MeshRun> {
  const dir = benchDir(`req-${mode}`);
  const mesh = await startMesh(dir, { forwarder: 'debug' }, {}, mode === 'secure' ? new BenchIdentities(dir) : undefined);
  const nseNs = await addNs('nse');
  const nse = await startNse(mesh, nseNs, { NSM_CIDR_PREFIX: '10.80.0.0/16' });
  const pids = [mesh.procs.registry.pid, mesh.procs.nsmgr.pid, mesh.procs.forwarder.pid, nse.pid];
  return { mode, mesh, nseNs, pids, adopt: [], seq: [], par: [], parWall: NaN, proc: [] };
}

/** The forwarder's own figures (debug "data plane converged", ms): Requests that changed the kernel (in log order) and refreshes (no action). */
function converged(mesh: Mesh): { made: number[]; refresh: number[] } {
  const all = [...mesh.procs.forwarder.log().matchAll(/"actions":\[([^\]]*)\],"ms":([\d.]+),"msg":"data plane converged"/g)];
  return { made: all.filter((m) => m[1] !== '').map((m) => Number(m[2])), refresh: all.filter((m) => m[1] === '').map((m) => Number(m[2])) };
}

const notReady = (xs: Sample[]) => `${xs.filter((x) => x.notReadyAtReturn).length}/${xs.length}`;
const flat = (xs: Sample[]) => xs.flatMap((x) => x.refreshes);
const firsts = (xs: Sample[]) => xs.flatMap((x) => (x.firstRefresh === undefined ? [] : [x.firstRefresh]));

/** The table of one mesh (the raw baselines and bare node are the same for both). */
function printRun(r: MeshRun, raw: { seq: Array<{ create: number; usable: number }>; par: Array<{ create: number; usable: number }>; bareNode: number[] }): void {
  const s = {
    rawCreate: stats(raw.seq.map((x) => x.create)),
    rawUsable: stats(raw.seq.map((x) => x.usable)),
    seqUsable: stats(r.seq.map((x) => x.usable)),
    parUsable: stats(r.par.map((x) => x.usable)),
    rawParUsable: stats(raw.par.map((x) => x.usable)),
  };
  // 5 warm-up, then N sequential, the CPU-window sample, then N concurrent Requests, then the processes' (refreshes apart).
  const conv = converged(r.mesh);
  const cpuOne = r.cpu ? 1 : 0;
  const convSeq = conv.made.slice(5, 5 + N);
  const convPar = conv.made.slice(5 + N + cpuOne, 5 + 2 * N + cpuOne);
  const expected = 5 + 2 * N + cpuOne + PROCESS_N;
  console.log('');
  console.log(`### ${r.mode === 'secure' ? 'secure mesh: mTLS + ES256 path tokens' : 'insecure mesh: NSM_INSECURE=true'}`);
  console.log('');
  console.log(
    table(['', 'n', 'p50', 'p95', 'max', 'note'], [
      row('raw: create (2 ip -batch execs), sequential', s.rawCreate),
      row('raw: create + usable check, sequential', s.rawUsable),
      row('usable check only (interface already usable)', stats(r.seq.map((x) => x.verify))),
      row('adopt check alone (new channel + 1st monitor event)', stats(r.adopt)),
      row('forwarder: data plane converged (its log), sequential', stats(convSeq), conv.made.length === expected ? '' : `${conv.made.length} log lines, expected ${expected}`),
      row('NSC startNsc → Request returned, sequential', stats(r.seq.map((x) => x.connected))),
      row('NSC startNsc → usable, sequential', s.seqUsable, `not usable at return: ${notReady(r.seq)}`),
      row('refresh: 1st re-Request on a new channel', stats(firsts(r.seq))),
      row('refresh: re-Request on an established channel', stats(flat(r.seq))),
      row('forwarder: refresh converged, nothing to do (its log)', stats(conv.refresh)),
      row(`raw: create, ${C} concurrent`, stats(raw.par.map((x) => x.create))),
      row(`raw: create + usable check, ${C} concurrent`, s.rawParUsable),
      row(`forwarder: data plane converged (its log), ${C} concurrent`, stats(convPar)),
      row(`NSC startNsc → Request returned, ${C} concurrent`, stats(r.par.map((x) => x.connected))),
      row(`NSC startNsc → usable, ${C} concurrent`, s.parUsable, `not usable at return: ${notReady(r.par)}`),
      ...(PROCESS_N > 0
        ? [
            row('process: bare `ip netns exec … node -e 0`', stats(raw.bareNode)),
            row('process: spawn → "starting" log line', stats(r.proc.map((p) => p.started))),
            row('process: spawn → "connection established"', stats(r.proc.map((p) => p.established))),
            row('process: spawn → usable', stats(r.proc.map((p) => p.usable))),
          ]
        : []),
    ]),
  );
  const ratio = (a: Stats, b: Stats) => `${(a.p50 / b.p50).toFixed(2)}x p50, ${(a.p95 / b.p95).toFixed(2)}x p95`;
  console.log('');
  console.log(`ratio sequential usable / raw create:            ${ratio(s.seqUsable, s.rawCreate)}`);
  console.log(`ratio sequential usable / raw create+usable:     ${ratio(s.seqUsable, s.rawUsable)}`);
  console.log(`ratio ${C}-concurrent usable / raw create+usable: ${ratio(s.parUsable, s.rawParUsable)}`);
  console.log(`${C}-concurrent phase: ${N} connect+usable+close+netns cycles in ${(r.parWall / 1000).toFixed(1)} s (${(N / (r.parWall / 1000)).toFixed(1)} cycles/s)`);
  const target = s.seqUsable.p50 <= 30 && s.seqUsable.p50 <= 5 * s.rawCreate.p50;
  console.log(`target (sequential p50 ≤ 30 ms and ≤ 5× raw create): ${target ? 'MET' : 'NOT MET'} (p50 ${ms(s.seqUsable.p50)} ms, raw ${ms(s.rawCreate.p50)} ms)`);
}

const PID_NAMES = ['registry', 'nsmgr', 'forwarder', 'nse'];

/** CPU per refresh on an established channel, per process, and the sockets each opened meanwhile. */
function printRefreshCpu(runs: MeshRun[]): void {
  const rows = runs.flatMap((r) => {
    const c = r.cpu?.refreshCpu;
    const n = r.cpu?.refreshes.length ?? 0;
    if (!c || !n) return [];
    const per = (x: number) => ms(x / n, 2);
    const total = c.perPid.reduce((a, b) => a + b, 0);
    return [[r.mode, n, ms(stats(r.cpu!.refreshes).p50), ...c.perPid.map(per), per(c.self), per(total + c.self), c.newSockets.join('/')]];
  });
  if (!rows.length) return;
  console.log('');
  console.log(`CPU per refresh on an established channel (ms; /proc ticks of each process tree over one window of ${CPU_REFRESHES} refreshes,`);
  console.log('"NSC side" = the bench process; the pod relay not counted). "new sockets": sockets each process held at the end of the');
  console.log('window that it did not hold at its start — a refresh that dialled (and so did a handshake) would leave one. Compare');
  console.log('the secure − insecure CPU with one TLS handshake (bench/mtls-cost.ts).');
  console.log('');
  console.log(table(['mesh', 'n', 'wall p50', ...PID_NAMES, 'NSC side', 'total', `new sockets (${PID_NAMES.join('/')})`], rows));
}

/** secure / insecure, side by side, and the cost target. */
function printComparison(ins: MeshRun, sec: MeshRun): void {
  const lines: Array<[string, number[], number[]]> = [
    ['NSC startNsc → Request returned, sequential', ins.seq.map((x) => x.connected), sec.seq.map((x) => x.connected)],
    ['NSC startNsc → usable, sequential', ins.seq.map((x) => x.usable), sec.seq.map((x) => x.usable)],
    [`NSC startNsc → usable, ${C} concurrent`, ins.par.map((x) => x.usable), sec.par.map((x) => x.usable)],
    ['adopt check alone (new channel + 1st monitor event)', ins.adopt, sec.adopt],
    ['refresh: 1st re-Request on a new channel', firsts(ins.seq), firsts(sec.seq)],
    ['refresh: re-Request on an established channel', flat(ins.seq), flat(sec.seq)],
    ['process: spawn → usable', ins.proc.map((p) => p.usable), sec.proc.map((p) => p.usable)],
  ];
  const rows = lines.filter(([, a, b]) => a.length && b.length).map(([name, a, b]) => {
    const x = stats(a);
    const y = stats(b);
    return [name, `${x.n}/${y.n}`, ms(x.p50), ms(x.p95), ms(y.p50), ms(y.p95), ms(y.p50 / x.p50, 2), ms(y.p95 / x.p95, 2)];
  });
  console.log('');
  console.log('### cost of mTLS + tokens: secure mesh vs insecure mesh, same run (sequential samples alternate)');
  console.log('');
  console.log(table(['', 'n ins/sec', 'insecure p50', 'p95', 'secure p50', 'p95', 'ratio p50', 'ratio p95'], rows));
  const a = stats(ins.seq.map((x) => x.usable));
  const b = stats(sec.seq.map((x) => x.usable));
  const r = b.p50 / a.p50;
  console.log('');
  console.log(`mTLS cost target (sequential usable p50 secure/insecure ≤ ${SECURE_RATIO_TARGET}): ${r <= SECURE_RATIO_TARGET ? 'MET' : 'NOT MET'} (p50 ratio ${ms(r, 3)}: ${ms(b.p50)} ms vs ${ms(a.p50)} ms)`);
  const rf = stats(flat(sec.seq)).p50 / stats(flat(ins.seq)).p50;
  const rf1 = stats(firsts(sec.seq)).p50 / stats(firsts(ins.seq)).p50;
  console.log(`refresh on an established channel, p50 secure/insecure: ${ms(rf, 3)} (first refresh of each sample, which dials its channel: ${ms(rf1, 3)})`);
}

runBench(async () => {
  const startLoad = loadavgNow();
  console.log(`request-latency benchmark: N=${N}, concurrency=${C}, process-n=${PROCESS_N}, refreshes=${REFRESHES}, meshes: ${MODES.join(' + ')}`);
  console.log(machineInfo());
  const runs: MeshRun[] = [];
  for (const mode of MODES) runs.push(await startRun(mode));
  const nscLog = createWriteStream(join(runs[0]!.mesh.dir, 'nsc-inproc.log'));
  const secure = (r: MeshRun) => r.mode === 'secure';

  // Warm-up (JIT, gRPC channels, netns resolver cache of the forwarder): 5 samples per mesh, discarded.
  for (let i = 0; i < 5; i++) for (const r of runs) await nscSample(r.mesh, 100_000 + i, nscLog, SERVICE, { secure: secure(r) });

  for (const r of runs) {
    const identity = sampleIdentity(secure(r), 'nsc/adopt', createLogger('adopt', 'warn', nscLog));
    r.adopt = await pool(Math.min(N, 100), 1, (i) => adoptSample(r.mesh, i, identity.security));
    identity.stop();
  }
  const rawSeq = await pool(N, 1, (i) => rawSample(i));
  for (let i = 0; i < N; i++) for (const r of runs) r.seq.push(await nscSample(r.mesh, i, nscLog, SERVICE, { secure: secure(r), refreshes: REFRESHES }));
  if (CPU_REFRESHES > 0) for (const r of runs) r.cpu = await nscSample(r.mesh, 20_000, nscLog, SERVICE, { secure: secure(r), refreshes: CPU_REFRESHES, cpuPids: r.pids });
  const rawPar = await pool(N, C, (i) => rawSample(i));
  for (const r of runs) {
    const tPar = wallNow();
    r.par = await pool(N, C, (i) => nscSample(r.mesh, 10_000 + i, nscLog, SERVICE, { secure: secure(r) }));
    r.parWall = wallNow() - tPar;
  }

  const bareNode: number[] = [];
  if (PROCESS_N > 0) {
    const ns = await addNs('node');
    for (let i = 0; i < PROCESS_N; i++) bareNode.push(await nodeBare(ns));
    await delNs(ns);
    for (let i = 0; i < PROCESS_N; i++) for (const r of runs) r.proc.push(await processSample(r.mesh, i));
  }

  console.log('');
  console.log('"usable" = nsm-1 in the client netns has flags UP+LOWER_UP and the connection\'s src address, and a');
  console.log('ping to the NSE address (resent every 10 ms) got its first reply. Times in ms.');
  for (const r of runs) printRun(r, { seq: rawSeq, par: rawPar, bareNode });
  const ins = runs.find((r) => !secure(r));
  const sec = runs.find(secure);
  if (ins && sec) printComparison(ins, sec);
  printRefreshCpu(runs);
  console.log('');
  console.log(`loadavg start ${startLoad}, end ${loadavgNow()}`);
  nscLog.end();
  for (const r of runs) {
    const nseLinks = await nonLoLinks(r.nseNs);
    console.log(`leak check after all Closes (${r.mode}): links left in the NSE netns: ${nseLinks.length ? nseLinks.join(', ') : 'none'}`);
  }
  const left = await leftoverNs();
  if (left.length > runs.length) console.log(`note: netns still present before final cleanup: ${left.join(', ')}`);
});
