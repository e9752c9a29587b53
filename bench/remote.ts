/**
 * Remote connections (issue 15): what a connection across nodes costs next to a local one, measured in the
 * same run with their baselines — Request → usable, heal of a link-down, and throughput.
 *
 *   node dist/bench/remote.js [--n 20] [--reps 3] [--seconds 5] [--iperf-reps 1] [--settle 1500] [--underlay-cidr 10.252.0.0/24]
 *
 * Topology: `nsm up --nodes 2 --insecure` in a run dir of its own (/tmp/nsmb-remote-…; node netns, underlay
 * bridge, per-node nsmgr and forwarder: src/local/nodes.ts), and three NSEs (icmp responders, processes of
 * the bench in netns of their own): service nsmb-remote-l on node-1 (10.82.0.0/16), nsmb-remote-a on node-2
 * with payload ETHERNET (the forwarders pick VXLAN; 10.83.0.0/16), nsmb-remote-w on node-2 with payload IP
 * (WireGuard; 10.84.0.0/16). Every client talks to node-1's nsmgr.
 *
 * 1. Request → usable (bench/usable.ts's method): the in-process NSC chain, a fresh client netns per sample,
 *    timed from startNsc() until nsm-1 is UP+LOWER_UP with its address and a ping to the NSE is answered;
 *    N rounds, each one sample of: raw veth pair (2 `ip -batch`), raw VXLAN pair across the nodes (a VXLAN
 *    device made in each node netns over ul0, dstport 4799, moved into a fresh netns: 4 `ip -batch`), local
 *    (service L), remote (service A). Remote p50 ≤ 2× local p50 is the target. 3 warm-up rounds, discarded.
 *    The first failing remote sample stops the remote samples (its error is reported).
 * 2. Throughput: one `nsm nsc` process per connection kind in a netns of its own (local, vxlan, wireguard),
 *    then `--iperf-reps` rounds of `iperf3 -s -1 -B <addr>` in the server netns and `iperf3 -c <addr> -t S -J`
 *    in the client netns (TCP, one stream), over: the raw underlay (node-1 → node-2's underlay address), the
 *    local connection, VXLAN, WireGuard. Received bits per second; VXLAN ≥ 80 % of raw is the target.
 * 3. Heal of a link-down: `--reps` rounds over the three clients: `ip link set nsm-1 down` in the client netns;
 *    heal time by heal-time.ts's rule — t0 just before the command, an independent prober (`ping -i 0.01` to
 *    the NSE address, bench/prober.ts) must be steady for `--settle` ms before, the "to reply" time is its first
 *    reply after the command returned — and, as asked of a remote heal, the NSC's status file (NSM_STATUS_FILE)
 *    must count one more `healed` event: "healed + reply" is the later of the two. Then settle (no new heal
 *    event and the prober steady for `--settle` ms) before the next.
 *
 * Output: tables on stdout, progress on stderr, and as the last line `remote summary: {json}` (read by
 * bench/run.ts, stage `remote`). Everything is removed at the end or on a signal (bench/lib.ts cleanups:
 * the bench's processes by pid, its netns, `nsm down` of its mesh, then any process still in the mesh's netns).
 */
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { planTopology, processesInNetns, topologyNetns, type Topology } from '../src/local/nodes.js';
import type { MeshState } from '../src/local/state.js';
import type { NscStatus } from '../src/components/nsc/status.js';
import {
  addNs, argValue, benchDir, cpuPercent, delNs, execIn, loadavgNow, machineInfo, MAIN, ms, nonLoLinks, numArg, onCleanup, progress, runBench, sh, sleep,
  startNsm, stats, table, waitFor, wallNow, type Ns, type Proc, type Stats,
} from './lib.js';
import { Prober } from './prober.js';
import {
  CONNECTION_KINDS, LATENCY_RATIO_TARGET, median, parseIperf, remoteTargets, SUMMARY_PREFIX, THROUGHPUT_PATHS, VXLAN_SHARE_TARGET,
  type ConnectionKind, type HealFigures, type IperfFigures, type RemoteSummary, type ThroughputPath,
} from './remote-figures.js';
import { nscSample, rawSample, waitUsable, type NsmgrAt } from './usable.js';

const N = numArg('n', 20, 1, 500);
const REPS = numArg('reps', 3, 1, 50);
const SECONDS = numArg('seconds', 5, 1, 60);
const IPERF_REPS = numArg('iperf-reps', 1, 1, 10);
const SETTLE = numArg('settle', 1500, 100, 10_000);
/** Checked by `nsm up` (private, /16…/28, unused by the host netns). */
const UNDERLAY = argValue('underlay-cidr', '10.252.0.0/24');
const WARMUP = 3;
const HEAL_TIMEOUT = 15_000;
const RAW_VXLAN_PORT = 4799;
const IPERF_PORT = 5201;

const SERVICES: Record<ConnectionKind, { name: string; node: string; payload: 'ethernet' | 'ip'; cidr: string }> = {
  local: { name: 'nsmb-remote-l', node: 'node-1', payload: 'ethernet', cidr: '10.82.0.0/16' },
  vxlan: { name: 'nsmb-remote-a', node: 'node-2', payload: 'ethernet', cidr: '10.83.0.0/16' },
  wireguard: { name: 'nsmb-remote-w', node: 'node-2', payload: 'ip', cidr: '10.84.0.0/16' },
};
const serviceUrl = (k: ConnectionKind) => `kernel://${SERVICES[k].name}/nsm-1`;
const bare = (cidr: string) => cidr.split('/')[0]!;
const errText = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300);

// ---- the mesh of two nodes -----------------------------------------------------------------------------

interface NodeMesh {
  readonly dir: string;
  readonly topology: Topology;
  /** The nsmgr of a node, as a sample's mesh (usable.ts). */
  at(node: string): NsmgrAt;
  /** A node's netns, as an Ns. */
  netns(node: string): Ns;
  address(node: string): string;
}

const run = promisify(execFile);

/** `nsm <args>` (the CLI of this checkout), outside any run dir of the caller's env. */
async function nsmCli(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, NSM_RUN_DIR: '' } });
  return stdout;
}

function nsOf(name: string): Ns {
  const path = `/run/netns/${name}`;
  const s = statSync(path, { bigint: true });
  return { name, path, inodeUrl: `inode://${s.dev}/${s.ino}`, ino: s.ino };
}

/** Stops the mesh of `dir` (nsm down), then whatever still runs in its netns (started by it), and deletes them. */
async function downNodes(dir: string, planned: Topology): Promise<void> {
  if (existsSync(join(dir, 'mesh.json'))) await nsmCli(['down', '--run-dir', dir]).catch((err) => progress(`nsm down: ${errText(err)}`));
  const names = topologyNetns(planned);
  for (const { pid } of processesInNetns(names)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const n of names) if (existsSync(`/run/netns/${n}`)) await sh('ip', ['netns', 'del', n]).catch(() => undefined);
}

async function upNodes(dir: string): Promise<NodeMesh> {
  // The names are a pure function of the run dir: cleanup knows them even if `up` fails half-way.
  const planned = planTopology(dir, 2, UNDERLAY);
  onCleanup(() => downNodes(dir, planned));
  const t0 = wallNow();
  await nsmCli(['up', '--nodes', '2', '--insecure', '--underlay-cidr', UNDERLAY, '--run-dir', dir]);
  progress(`nsm up --nodes 2 --insecure: ${ms((wallNow() - t0) / 1000)} s`);
  const state = JSON.parse(readFileSync(join(dir, 'mesh.json'), 'utf8')) as MeshState;
  const topology = state.topology!;
  const node = (name: string) => {
    const n = topology.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no ${name} in the mesh of ${dir}`);
    return n;
  };
  return {
    dir,
    topology,
    at: (name) => ({ dir, sock: { nsmgr: `unix://${join(dir, 'nodes', node(name).name, 'nsm.io.sock')}` } }),
    netns: (name) => nsOf(node(name).netns),
    address: (name) => node(name).address,
  };
}

async function startEndpoint(m: NodeMesh, kind: ConnectionKind): Promise<{ proc: Proc; ns: Ns }> {
  const s = SERVICES[kind];
  const ns = await addNs(`e${kind[0]}`);
  const proc = startNsm(m.dir, `nse-${kind}`, ['nse'], {
    NSM_CONNECT_TO: m.at(s.node).sock.nsmgr,
    NSM_NAME: `nsmb-nse-${kind}`,
    NSM_SERVICE_NAMES: s.name,
    NSM_REGISTER_SERVICE: 'true',
    NSM_PAYLOAD: s.payload,
    NSM_CIDR_PREFIX: s.cidr,
  }, ns);
  await proc.waitLog(/"msg":"ready"/, 30_000);
  return { proc, ns };
}

interface Client {
  readonly kind: ConnectionKind;
  readonly ns: Ns;
  readonly proc: Proc;
  readonly statusFile: string;
  readonly src: string;
  /** The NSE's address (no prefix). */
  readonly dst: string;
  /** The connection's path (segment names) and the NSC's nsm-1: its kind (veth, vxlan, tun) and MTU — what the forwarders made. */
  readonly path: string[];
  readonly iface: string;
}

/** `<kind> mtu <n>` of a link in `ns` (`ip -d`: linkinfo.info_kind). */
async function linkKind(ns: Ns, dev: string): Promise<string> {
  const [l] = JSON.parse(await sh('ip', ['-n', ns.name, '-d', '-j', 'link', 'show', 'dev', dev])) as Array<{ mtu: number; linkinfo?: { info_kind?: string } }>;
  return `${l?.linkinfo?.info_kind ?? 'unknown kind'}, mtu ${l?.mtu}`;
}

/** The `err` of the last log line of `proc` that has one (why an NSC keeps retrying). */
function lastLogError(proc: Proc): string | undefined {
  const line = proc.log().split('\n').reverse().find((l) => l.includes('"err":'));
  try {
    return line ? String((JSON.parse(line) as { err: unknown }).err).slice(0, 300) : undefined;
  } catch {
    return undefined;
  }
}

/** `nsm nsc` for the kind's service in a netns of its own, connected through node-1's nsmgr. */
async function startClient(m: NodeMesh, kind: ConnectionKind): Promise<Client> {
  const ns = await addNs(`c${kind[0]}`);
  const statusFile = join(m.dir, `nsc-${kind}.status.json`);
  const proc = startNsm(m.dir, `nsc-${kind}`, ['nsc'], {
    NSM_CONNECT_TO: m.at('node-1').sock.nsmgr,
    NSM_NAME: `nsmb-nsc-${kind}`,
    NSM_NETWORK_SERVICES: serviceUrl(kind),
    NSM_STATUS_FILE: statusFile,
  }, ns);
  try {
    const est = await proc.waitLog(/"path":\[([^\]]*)\],"src":\["([^"]+)"\],"dst":\["([^"]+)"\].*"msg":"connection established"/, 30_000).catch((err: unknown) => {
      throw new Error(`not connected in 30 s${lastLogError(proc) ? `; its last error: ${lastLogError(proc)}` : ` (${errText(err)})`}`);
    });
    const [src, dst] = [est[2]!, bare(est[3]!)];
    await waitUsable(ns, 'nsm-1', src, dst);
    return { kind, ns, proc, statusFile, src, dst, path: est[1]!.replace(/"/g, '').split(','), iface: await linkKind(ns, 'nsm-1') };
  } catch (err) {
    await proc.kill();
    await delNs(ns);
    throw err;
  }
}

// ---- 1. Request → usable -------------------------------------------------------------------------------

/**
 * Baseline of a remote Request: the same end state made by hand — a VXLAN device in each node netns (over
 * ul0, the other node as remote, dstport 4799 so it never shares the forwarders' socket), moved into a fresh
 * netns and renamed nsm-1, one address and one link route each (4 `ip -batch` execs) — and the usable check.
 * `direct`: each device is created in the client netns at once (`ip link add … netns <client> type vxlan …
 * dev ul0` run in the node netns: the UDP socket stays in the node netns, no move), the kernel's cheapest way.
 */
async function rawVxlanSample(m: NodeMesh, k: number, direct = false): Promise<{ addMove: number; create: number; usable: number }> {
  const [n1, n2] = [m.netns('node-1'), m.netns('node-2')];
  const [ip1, ip2] = [m.address('node-1'), m.address('node-2')];
  const a = await addNs('rva');
  const b = await addNs('rvb');
  const dev = `vxr${k}`;
  // Unique per sample: a deleted netns takes its devices with it only when the kernel gets to it, after `ip netns del` returned.
  const vni = 0xf00000 + (direct ? 0x80000 : 0) + (k % 0x7ffff);
  const aAddr = `10.85.${Math.floor(k / 128) % 256}.${(k % 128) * 2 + 1}`;
  const bAddr = `10.85.${Math.floor(k / 128) % 256}.${(k % 128) * 2}`;
  const vxlan = `type vxlan id ${vni} remote REMOTE local LOCAL dstport ${RAW_VXLAN_PORT} dev ul0`;
  const side = (node: Ns, local: string, remote: string, to: Ns) => {
    const add = vxlan.replace('REMOTE', remote).replace('LOCAL', local);
    const lines = direct ? `link add ${dev} netns ${to.path} ${add}\n` : `link add ${dev} ${add}\nlink set dev ${dev} netns ${to.path}\n`;
    return execIn(node.path, ['ip', '-batch', '-'], lines);
  };
  const inside = (ns: Ns, addr: string, peer: string) =>
    execIn(ns.path, ['ip', '-batch', '-'], `link set dev ${dev} name nsm-1\naddr add ${addr}/32 dev nsm-1\nlink set dev nsm-1 up\nroute replace ${peer}/32 dev nsm-1 scope link\n`);
  try {
    const t0 = wallNow();
    await side(n1, ip1, ip2, a);
    await side(n2, ip2, ip1, b);
    const tm = wallNow();
    await inside(a, aAddr, bAddr);
    await inside(b, bAddr, aAddr);
    const t1 = wallNow();
    await waitUsable(a, 'nsm-1', `${aAddr}/32`, bAddr);
    return { addMove: tm - t0, create: t1 - t0, usable: wallNow() - t0 };
  } finally {
    await delNs(a);
    await delNs(b);
    // Left in a node netns only when the move failed.
    for (const n of [n1, n2]) await sh('ip', ['-n', n.name, 'link', 'del', dev]).catch(() => undefined);
  }
}

interface LatencyRun {
  rawVeth: number[];
  rawVxlan: number[];
  rawVxlanCreate: number[];
  rawVxlanAddMove: number[];
  rawVxlanDirect: number[];
  rawVxlanDirectAdd: number[];
  local: number[];
  remote: number[];
  localConnected: number[];
  remoteConnected: number[];
  remoteError?: string;
}

async function measureLatency(m: NodeMesh): Promise<LatencyRun> {
  const r: LatencyRun = { rawVeth: [], rawVxlan: [], rawVxlanCreate: [], rawVxlanAddMove: [], rawVxlanDirect: [], rawVxlanDirectAdd: [], local: [], remote: [], localConnected: [], remoteConnected: [] };
  const log = createWriteStream(join(m.dir, 'nsc-inproc.log'));
  const node1 = m.at('node-1');
  try {
    for (let i = 0; i < WARMUP + N; i++) {
      const keep = i >= WARMUP;
      const veth = await rawSample(i);
      const vx = await rawVxlanSample(m, i);
      const vxd = await rawVxlanSample(m, i, true);
      const loc = await nscSample(node1, i, log, serviceUrl('local'), { timeoutMs: 15_000 });
      if (keep) {
        r.rawVeth.push(veth.usable);
        r.rawVxlan.push(vx.usable);
        r.rawVxlanCreate.push(vx.create);
        r.rawVxlanAddMove.push(vx.addMove);
        r.rawVxlanDirect.push(vxd.usable);
        r.rawVxlanDirectAdd.push(vxd.addMove);
        r.local.push(loc.usable);
        r.localConnected.push(loc.connected);
      }
      if (r.remoteError === undefined) {
        try {
          const rem = await nscSample(node1, 1000 + i, log, serviceUrl('vxlan'), { timeoutMs: 15_000 });
          if (keep) {
            r.remote.push(rem.usable);
            r.remoteConnected.push(rem.connected);
          }
        } catch (err) {
          r.remoteError = errText(err);
          progress(`remote sample ${i} failed, no more remote samples: ${r.remoteError}`);
        }
      }
      if (keep && (i - WARMUP + 1) % 5 === 0) progress(`latency: ${i - WARMUP + 1}/${N} rounds (local p50 ${ms(stats(r.local).p50)} ms, remote p50 ${ms(stats(r.remote).p50)} ms)`);
    }
  } finally {
    log.end();
  }
  return r;
}

function printLatency(r: LatencyRun): void {
  const row = (name: string, xs: number[]) => {
    const s = stats(xs);
    return [name, s.n, ms(s.p50), ms(s.p95), ms(s.max)];
  };
  console.log('');
  console.log('### 1. Request → usable, remote vs local (in-process NSC chain, fresh client netns per sample, on node-1; ms)');
  console.log('');
  console.log(table(['', 'n', 'p50', 'p95', 'max'], [
    row('raw: veth pair (2 ip -batch) + usable check', r.rawVeth),
    row('raw: VXLAN, add in each node netns + move into the client netns (2 ip -batch)', r.rawVxlanAddMove),
    row('raw: VXLAN pair across the nodes, create only (4 ip -batch)', r.rawVxlanCreate),
    row('raw: VXLAN pair across the nodes + usable check', r.rawVxlan),
    row('raw, direct: VXLAN created in the client netns from each node netns (2 ip -batch, no move)', r.rawVxlanDirectAdd),
    row('raw, direct: VXLAN pair across the nodes + usable check (4 ip -batch)', r.rawVxlanDirect),
    row('local: startNsc → Request returned (NSE on node-1)', r.localConnected),
    row('local: startNsc → usable', r.local),
    row('remote: startNsc → Request returned (NSE on node-2, VXLAN)', r.remoteConnected),
    row('remote: startNsc → usable', r.remote),
  ]));
  const [l, rem] = [stats(r.local), stats(r.remote)];
  console.log('');
  if (r.remoteError) console.log(`remote samples stopped: ${r.remoteError}`);
  console.log(`ratio remote / local: ${ms(rem.p50 / l.p50, 2)}× p50, ${ms(rem.p95 / l.p95, 2)}× p95 — target p50 ≤ ${LATENCY_RATIO_TARGET}×: ${rem.n === 0 ? 'NOT RUN' : rem.p50 <= LATENCY_RATIO_TARGET * l.p50 ? 'MET' : 'NOT MET'}`);
}

// ---- 2. throughput -------------------------------------------------------------------------------------

/** Runs `argv` inside netns `ns`; resolves with its exit code and output whatever the code (killed after `timeoutMs`). */
function runIn(ns: Ns, argv: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res, rej) => {
    const c = spawn('nsenter', [`--net=${ns.path}`, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', rej);
    c.on('close', (code) => {
      clearTimeout(t);
      res({ code, stdout, stderr });
    });
  });
}

/** One iperf3 run: a one-shot server bound to `addr` in `server`, the client in `client`, SECONDS long. */
async function iperf(server: Ns, client: Ns, addr: string): Promise<IperfFigures> {
  const srv = runIn(server, ['iperf3', '-s', '-1', '-B', addr, '-p', String(IPERF_PORT), '-J'], (SECONDS + 20) * 1000);
  await waitFor(`iperf3 listening on ${addr}:${IPERF_PORT} in ${server.name}`, async () => (await execIn(server.path, ['ss', '-Hltn', 'sport', '=', `:${IPERF_PORT}`])).includes(`:${IPERF_PORT}`), 5000, 20);
  const c = await runIn(client, ['iperf3', '-c', addr, '-p', String(IPERF_PORT), '-t', String(SECONDS), '-J'], (SECONDS + 15) * 1000);
  const s = await srv;
  try {
    return parseIperf(c.stdout);
  } catch (err) {
    throw new Error(`${errText(err)} (client exit ${c.code}${c.stderr ? `: ${c.stderr.trim().slice(0, 200)}` : ''}; server exit ${s.code})`);
  }
}

type Throughput = RemoteSummary['throughput'];

async function measureThroughput(m: NodeMesh, clients: Partial<Record<ConnectionKind, Client>>, nses: Record<ConnectionKind, Ns | undefined>): Promise<Throughput> {
  const out: Record<ThroughputPath, { bps: number[]; retransmits: number[]; wireguardGoCpu: number[]; error?: string }> = {
    raw: { bps: [], retransmits: [], wireguardGoCpu: [] },
    local: { bps: [], retransmits: [], wireguardGoCpu: [] },
    vxlan: { bps: [], retransmits: [], wireguardGoCpu: [] },
    wireguard: { bps: [], retransmits: [], wireguardGoCpu: [] },
  };
  // The WireGuard ends run as wireguard-go daemons in the node netns: their CPU is not iperf3's.
  const wgPids = () => processesInNetns(topologyNetns(m.topology)).filter(({ pid }) => comm(pid) === 'wireguard-go').map((x) => x.pid);
  const ends = (p: ThroughputPath): { server: Ns; client: Ns; addr: string } | undefined => {
    if (p === 'raw') return { server: m.netns('node-2'), client: m.netns('node-1'), addr: m.address('node-2') };
    const c = clients[p];
    const nse = nses[p];
    return c && nse ? { server: nse, client: c.ns, addr: c.dst } : undefined;
  };
  for (let rep = 0; rep < IPERF_REPS; rep++) {
    for (const p of THROUGHPUT_PATHS) {
      const e = ends(p);
      if (!e) continue;
      try {
        let f: IperfFigures | undefined;
        const [wgCpu] = await cpuPercent([wgPids()], async () => void (f = await iperf(e.server, e.client, e.addr)));
        out[p].bps.push(f!.bps);
        out[p].retransmits.push(f!.retransmits);
        out[p].wireguardGoCpu.push(wgCpu!);
        progress(`iperf3 ${p} #${rep + 1}: ${ms(f!.bps / 1e9, 2)} Gbit/s, ${f!.retransmits} retransmits, CPU % of one core: client ${ms(f!.cpuClient, 0)}, server ${ms(f!.cpuServer, 0)}, wireguard-go ${ms(wgCpu!, 0)}`);
      } catch (err) {
        out[p].error = errText(err);
        progress(`iperf3 ${p} #${rep + 1} failed: ${out[p].error}`);
      }
    }
  }
  return out;
}

function printThroughput(t: Throughput, clientErrors: RemoteSummary['clientErrors']): void {
  const raw = median(t.raw?.bps ?? []);
  const names: Record<ThroughputPath, string> = {
    raw: 'raw underlay: node-1 netns → node-2 netns (veth–bridge–veth, tx offload off)',
    local: 'local connection: NSC and NSE on node-1 (veth)',
    vxlan: 'VXLAN connection: NSC node-1, NSE node-2 (payload ETHERNET)',
    wireguard: 'WireGuard connection: NSC node-1, NSE node-2 (payload IP, wireguard-go)',
  };
  const rows = THROUGHPUT_PATHS.map((p) => {
    const x = t[p];
    const v = median(x?.bps ?? []);
    const note = x?.error ?? (p === 'raw' ? '' : clientErrors[p as ConnectionKind]) ?? '';
    const wg = p === 'wireguard' ? ms(median(x?.wireguardGoCpu ?? []), 0) : '';
    return [names[p], x?.bps.length ?? 0, ms(v / 1e9, 2), x?.bps.map((b) => ms(b / 1e9, 2)).join(' ') ?? '', p === 'raw' ? '100' : ms((100 * v) / raw, 0), ms(median(x?.retransmits ?? []), 0), wg, note];
  });
  console.log('');
  console.log(`### 2. Throughput (iperf3 TCP, one stream, ${SECONDS} s per run, ${IPERF_REPS} run(s) per path, round-robin; Gbit/s received)`);
  console.log('');
  console.log(table(['path', 'runs', 'median', 'each', '% of raw', 'retransmits', 'wireguard-go CPU % (both ends)', 'note'], rows));
  const vx = median(t.vxlan?.bps ?? []) / raw;
  console.log('');
  console.log(`VXLAN / raw underlay: ${ms(100 * vx, 0)} % — target ≥ ${VXLAN_SHARE_TARGET * 100} %: ${Number.isFinite(vx) ? (vx >= VXLAN_SHARE_TARGET ? 'MET' : 'NOT MET') : 'NOT RUN'}`);
  console.log(`WireGuard / raw underlay: ${ms((100 * median(t.wireguard?.bps ?? [])) / raw, 0)} % (reported)`);
}

// ---- 3. heal of a link-down ----------------------------------------------------------------------------

function readStatus(file: string): NscStatus | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as NscStatus;
  } catch {
    return undefined;
  }
}

interface HealSample {
  toReply: number;
  healed: number;
}

/** No new heal event for SETTLE ms and the prober steady over SETTLE ms (at most 20 s). */
async function settle(c: Client, prober: Prober): Promise<void> {
  const until = Date.now() + 20_000;
  for (;;) {
    const before = readStatus(c.statusFile)?.heal.events;
    await sleep(SETTLE);
    if ((readStatus(c.statusFile)?.heal.events === before && prober.steady(SETTLE)) || Date.now() > until) return;
  }
}

async function linkDownOnce(c: Client, prober: Prober): Promise<HealSample> {
  await waitFor(`prober of ${c.kind} steady for ${SETTLE} ms`, () => prober.steady(SETTLE), 30_000, 20);
  const healedBefore = readStatus(c.statusFile)?.heal.healed ?? 0;
  const t0 = wallNow();
  await sh('ip', ['-n', c.ns.name, 'link', 'set', 'dev', 'nsm-1', 'down']);
  const t1 = wallNow();
  const reply = await waitFor('first reply after the link-down', () => prober.firstAfter(t1 + 0.5), HEAL_TIMEOUT, 2).catch(() => undefined);
  const healed = await waitFor('status healed', () => {
    const s = readStatus(c.statusFile);
    return s && s.heal.healed > healedBefore && s.connections.every((x) => x.state === 'connected') ? s : undefined;
  }, HEAL_TIMEOUT, 5).catch(() => undefined);
  await settle(c, prober);
  return { toReply: reply ? reply.t - t0 : NaN, healed: healed?.heal.lastHeal ? healed.heal.lastHeal.at - t0 : NaN };
}

async function measureHeal(clients: Client[]): Promise<RemoteSummary['heal']> {
  const probers = new Map(clients.map((c) => [c.kind, new Prober(c.ns, c.dst)]));
  const samples = new Map<ConnectionKind, HealSample[]>(clients.map((c) => [c.kind, []]));
  for (let rep = 0; rep < REPS; rep++) {
    for (const c of clients) {
      const s = await linkDownOnce(c, probers.get(c.kind)!).catch((err: unknown) => {
        progress(`link-down ${c.kind} #${rep + 1} not measured: ${errText(err)}`);
        return { toReply: NaN, healed: NaN };
      });
      samples.get(c.kind)!.push(s);
      progress(`link-down ${c.kind} #${rep + 1}: to reply ${ms(s.toReply)} ms, status healed ${ms(s.healed)} ms`);
    }
  }
  for (const p of probers.values()) p.stop();
  const out: RemoteSummary['heal'] = {};
  for (const [kind, xs] of samples) {
    const ok = xs.filter((x) => Number.isFinite(x.toReply) && Number.isFinite(x.healed));
    out[kind] = {
      n: xs.length,
      toReply: stats(xs.map((x) => x.toReply).filter(Number.isFinite)),
      healed: stats(xs.map((x) => x.healed).filter(Number.isFinite)),
      both: stats(ok.map((x) => Math.max(x.toReply, x.healed))),
      never: xs.length - ok.length,
    };
  }
  return out;
}

function printHeal(h: RemoteSummary['heal'], clientErrors: RemoteSummary['clientErrors']): void {
  const f = (s: Stats) => `${ms(s.p50)} / ${ms(s.p95)} / ${ms(s.max)}`;
  const rows = CONNECTION_KINDS.map((k) => {
    const x: HealFigures | undefined = h[k];
    return x ? [k, x.n, f(x.toReply), f(x.healed), f(x.both), x.never] : [k, 0, '', '', '', clientErrors[k] ?? 'not run'];
  });
  console.log('');
  console.log('### 3. Heal of a link-down (`ip link set nsm-1 down` in the NSC netns; ms from just before the command)');
  console.log('');
  console.log(table(['connection', 'n', 'to reply p50 / p95 / max', 'status healed p50 / p95 / max', 'healed + reply p50 / p95 / max', 'never healed'], rows));
  const [l, v] = [h.local?.both.p50 ?? NaN, h.vxlan?.both.p50 ?? NaN];
  console.log('');
  console.log(`remote (VXLAN) / local heal p50: ${ms(v / l, 2)}× (${ms(v)} ms vs ${ms(l)} ms)`);
}

// ---- the run -------------------------------------------------------------------------------------------

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Links other than lo and ul0 in the node netns, and in the NSEs' netns, once every client is gone. */
async function leakCheck(m: NodeMesh, nses: Ns[]): Promise<string> {
  const extra = async (ns: Ns) => (await nonLoLinks(ns)).filter((l) => l !== 'ul0');
  await waitFor('NSE netns empty after the clients closed', async () => (await Promise.all(nses.map(extra))).every((x) => x.length === 0), 10_000, 100).catch(() => undefined);
  const lines: string[] = [];
  for (const ns of [m.netns('node-1'), m.netns('node-2'), ...nses]) {
    const left = await extra(ns);
    lines.push(`${ns.name}: ${left.length ? left.join(', ') : 'none'}`);
  }
  const wg = processesInNetns(topologyNetns(m.topology)).filter(({ pid }) => comm(pid) === 'wireguard-go');
  return `leak check after every client closed — links other than lo/ul0: ${lines.join('; ')}; wireguard-go processes in the node netns: ${wg.length ? wg.map((x) => `${x.pid} (${x.netns})`).join(', ') : 'none'}`;
}

runBench(async () => {
  const startLoad = loadavgNow();
  console.log(`remote benchmark: n=${N} latency rounds, ${REPS} link-downs per connection, iperf3 ${IPERF_REPS}×${SECONDS} s per path, underlay ${UNDERLAY}`);
  console.log(machineInfo());
  const dir = benchDir('remote');
  const m = await upNodes(dir);
  const nse: Record<ConnectionKind, Ns | undefined> = { local: undefined, vxlan: undefined, wireguard: undefined };
  const clientErrors: RemoteSummary['clientErrors'] = {};
  for (const k of CONNECTION_KINDS) {
    try {
      nse[k] = (await startEndpoint(m, k)).ns;
    } catch (err) {
      // The local NSE is the baseline of everything: without it the run is void.
      if (k === 'local') throw err;
      clientErrors[k] = `its NSE did not start: ${errText(err)}`;
    }
  }
  progress('mesh of 2 nodes and the NSEs ready; latency rounds');

  const lat = await measureLatency(m);
  progress('throughput: starting one NSC process per connection kind');
  const clients: Partial<Record<ConnectionKind, Client>> = {};
  for (const k of CONNECTION_KINDS) {
    if (!nse[k]) continue;
    try {
      clients[k] = await startClient(m, k);
    } catch (err) {
      clientErrors[k] = errText(err);
      progress(`NSC for ${k} did not connect: ${clientErrors[k]}`);
    }
  }
  const clientLines = CONNECTION_KINDS.map((k) => {
    const c = clients[k];
    return c ? `- ${k}: ${c.path.join(' → ')} (${c.path.length} segments); the NSC's nsm-1: ${c.iface}; ${c.src} → ${c.dst}` : `- ${k}: did not connect: ${clientErrors[k]}`;
  });
  for (const l of clientLines) progress(l.slice(2));
  const throughput = await measureThroughput(m, clients, nse);
  progress('heal: link-downs');
  const up = CONNECTION_KINDS.flatMap((k) => (clients[k] ? [clients[k]] : []));
  const heal = await measureHeal(up);
  for (const c of up) await c.proc.kill();
  const leaks = await leakCheck(m, CONNECTION_KINDS.flatMap((k) => (nse[k] ? [nse[k]] : [])));

  const summary: RemoteSummary = {
    latency: { local: stats(lat.local), remote: stats(lat.remote), rawVeth: stats(lat.rawVeth), rawVxlan: stats(lat.rawVxlan), remoteError: lat.remoteError },
    heal,
    throughput,
    clientErrors,
  };
  printLatency(lat);
  console.log('');
  console.log('Connections of the throughput and heal phases (one `nsm nsc` process each, on node-1):');
  console.log('');
  for (const l of clientLines) console.log(l);
  printThroughput(throughput, clientErrors);
  printHeal(heal, clientErrors);
  console.log('');
  console.log('### Targets');
  console.log('');
  for (const t of remoteTargets(summary)) console.log(`- **${t.met === undefined ? 'reported' : t.met ? 'met' : 'MISSED'}** — ${t.target}: ${t.measured}`);
  console.log('');
  console.log(leaks);
  console.log(`loadavg start ${startLoad}, end ${loadavgNow()}`);
  console.log(`${SUMMARY_PREFIX}${JSON.stringify(summary)}`);
});
