/**
 * Request latency: from an NSC Request to a *usable* kernel interface, p50/p95 over N connections,
 * sequential and C concurrent, with the raw kernel work for one connection measured in the same run.
 *
 *   node dist/bench/request-latency.js [--n 200] [--concurrency 10] [--process-n 20]
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
import { nscSample, rawSample, waitUsable, type Sample } from './usable.js';
import {
  addNs, argValue, benchDir, delNs, leftoverNs, loadavgNow, nonLoLinks, machineInfo, MAIN, ms, runBench, startMesh, startNse,
  stats, table, wallNow, type Mesh, type Ns, type Stats,
} from './lib.js';
import { INSECURE } from '../src/security/tls.js';

const N = Number(argValue('n', '200'));
const C = Number(argValue('concurrency', '10'));
const PROCESS_N = Number(argValue('process-n', '20'));
const SERVICE = 'kernel://dataplane-interrupt/nsm-1';

/** What startNsc does before its Request: a fresh channel to nsmgr and one MonitorConnections event (adopt check). */
async function adoptSample(mesh: Mesh, i: number): Promise<number> {
  const t0 = wallNow();
  const pool = new ChannelPool(INSECURE);
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
  const t0 = wallNow();
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, MAIN, 'nsc'], {
    env: { ...process.env, NSM_LOG_LEVEL: 'info', NSM_INSECURE: 'true', NSM_NAME: `nscp-${i}`, NSM_CONNECT_TO: mesh.sock.nsmgr, NSM_NETWORK_SERVICES: SERVICE, NSM_LIVENESS_CHECK_ENABLED: 'false' },
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

runBench(async () => {
  const startLoad = loadavgNow();
  console.log(`request-latency benchmark: N=${N}, concurrency=${C}, process-n=${PROCESS_N}`);
  console.log(machineInfo());
  const dir = benchDir('req');
  const mesh = await startMesh(dir, { forwarder: 'debug' });
  const nseNs = await addNs('nse');
  await startNse(mesh, nseNs, { NSM_CIDR_PREFIX: '10.80.0.0/16' });
  const nscLog = createWriteStream(join(dir, 'nsc-inproc.log'));

  // Warm-up (JIT, gRPC channels, netns resolver cache of the forwarder): 5 samples, discarded.
  for (let i = 0; i < 5; i++) await nscSample(mesh, 100_000 + i, nscLog, SERVICE);

  const adopt = await pool(Math.min(N, 100), 1, (i) => adoptSample(mesh, i));
  const rawSeq = await pool(N, 1, (i) => rawSample(i));
  const seq = await pool(N, 1, (i) => nscSample(mesh, i, nscLog, SERVICE));
  const rawPar = await pool(N, C, (i) => rawSample(i));
  const tPar = wallNow();
  const par = await pool(N, C, (i) => nscSample(mesh, 10_000 + i, nscLog, SERVICE));
  const parWall = wallNow() - tPar;

  const proc: Array<{ started: number; established: number; usable: number }> = [];
  const bareNode: number[] = [];
  if (PROCESS_N > 0) {
    const ns = await addNs('node');
    for (let i = 0; i < PROCESS_N; i++) bareNode.push(await nodeBare(ns));
    await delNs(ns);
    for (let i = 0; i < PROCESS_N; i++) proc.push(await processSample(mesh, i));
  }

  const s = {
    rawCreate: stats(rawSeq.map((r) => r.create)),
    rawUsable: stats(rawSeq.map((r) => r.usable)),
    seqConnected: stats(seq.map((r) => r.connected)),
    seqUsable: stats(seq.map((r) => r.usable)),
    verify: stats(seq.map((r) => r.verify)),
    rawParCreate: stats(rawPar.map((r) => r.create)),
    rawParUsable: stats(rawPar.map((r) => r.usable)),
    parConnected: stats(par.map((r) => r.connected)),
    parUsable: stats(par.map((r) => r.usable)),
  };
  // The forwarder's own measurement of its kernel work (debug line "data plane converged", ms), in log order:
  // 5 warm-up, then N sequential, then N concurrent Requests.
  const conv = [...mesh.procs.forwarder.log().matchAll(/"ms":([\d.]+),"msg":"data plane converged"/g)].map((m) => Number(m[1]));
  const convSeq = conv.slice(5, 5 + N);
  const convPar = conv.slice(5 + N, 5 + 2 * N);
  const notReady = (xs: Sample[]) => `${xs.filter((x) => x.notReadyAtReturn).length}/${xs.length}`;
  console.log('');
  console.log('"usable" = nsm-1 in the client netns has flags UP+LOWER_UP and the connection\'s src address, and a');
  console.log('ping to the NSE address (resent every 10 ms) got its first reply. Times in ms.');
  console.log('');
  console.log(
    table(['', 'n', 'p50', 'p95', 'max', 'note'], [
      row('raw: create (2 ip -batch execs), sequential', s.rawCreate),
      row('raw: create + usable check, sequential', s.rawUsable),
      row('usable check only (interface already usable)', s.verify),
      row('adopt check alone (new channel + 1st monitor event)', stats(adopt)),
      row('forwarder: data plane converged (its log), sequential', stats(convSeq), conv.length === 5 + 2 * N + PROCESS_N ? '' : `${conv.length} log lines, expected ${5 + 2 * N + PROCESS_N}`),
      row('NSC startNsc → Request returned, sequential', s.seqConnected),
      row('NSC startNsc → usable, sequential', s.seqUsable, `not usable at return: ${notReady(seq)}`),
      row(`raw: create, ${C} concurrent`, s.rawParCreate),
      row(`raw: create + usable check, ${C} concurrent`, s.rawParUsable),
      row(`forwarder: data plane converged (its log), ${C} concurrent`, stats(convPar)),
      row(`NSC startNsc → Request returned, ${C} concurrent`, s.parConnected),
      row(`NSC startNsc → usable, ${C} concurrent`, s.parUsable, `not usable at return: ${notReady(par)}`),
      ...(PROCESS_N > 0
        ? [
            row('process: bare `ip netns exec … node -e 0`', stats(bareNode)),
            row('process: spawn → "starting" log line', stats(proc.map((p) => p.started))),
            row('process: spawn → "connection established"', stats(proc.map((p) => p.established))),
            row('process: spawn → usable', stats(proc.map((p) => p.usable))),
          ]
        : []),
    ]),
  );
  const ratio = (a: Stats, b: Stats) => `${(a.p50 / b.p50).toFixed(2)}x p50, ${(a.p95 / b.p95).toFixed(2)}x p95`;
  console.log('');
  console.log(`ratio sequential usable / raw create:            ${ratio(s.seqUsable, s.rawCreate)}`);
  console.log(`ratio sequential usable / raw create+usable:     ${ratio(s.seqUsable, s.rawUsable)}`);
  console.log(`ratio ${C}-concurrent usable / raw create+usable: ${ratio(s.parUsable, s.rawParUsable)}`);
  console.log(`${C}-concurrent phase: ${N} connect+usable+close+netns cycles in ${(parWall / 1000).toFixed(1)} s (${(N / (parWall / 1000)).toFixed(1)} cycles/s)`);
  const target = s.seqUsable.p50 <= 30 && s.seqUsable.p50 <= 5 * s.rawCreate.p50;
  console.log(`target (sequential p50 ≤ 30 ms and ≤ 5× raw create): ${target ? 'MET' : 'NOT MET'} (p50 ${ms(s.seqUsable.p50)} ms, raw ${ms(s.rawCreate.p50)} ms)`);
  console.log(`loadavg start ${startLoad}, end ${loadavgNow()}`);
  nscLog.end();
  const nseLinks = await nonLoLinks(nseNs);
  console.log(`leak check after all Closes: links left in the NSE netns: ${nseLinks.length ? nseLinks.join(', ') : 'none'}`);
  const left = await leftoverNs();
  if (left.length > 1) console.log(`note: netns still present before final cleanup: ${left.join(', ')}`);
});
