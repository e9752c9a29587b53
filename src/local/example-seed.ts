/**
 * The seed's steps (upstream `examples/heal/dataplane-interrupt`, shared seed) as a list, each with the
 * local command it stands for and what it does on the local mesh: start the mesh, check the pod names are
 * free, register the NetworkService, run the NSE and the NSC, ping both ways, start the seed's pinger, set
 * `nsm-1` down, wait for the pinger to see it, wait for the mesh to heal by itself, ping both ways again.
 * The steps share one {@link SeedRun}: what the run started (so cleanup can stop it) and what it measured
 * (so the summary can report it). Background work: the seed pinger and the independent counting ping,
 * both registered in `children`.
 *
 * Across nodes (`nsm example dataplane-interrupt --nodes N`, N ≥ 2): the same steps on a mesh of N nodes
 * (`nsm up --nodes N`), the NSE on node-2 and the NSC on node-1, so the connection takes the remote path
 * (NSC → nsmgr-1 → forwarder-1 → nsmgr-2 → forwarder-2 → NSE) over a tunnel of the underlay.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { realClock, type Clock } from '../core/clock.js';
import { sleep } from '../core/signals.js';
import { fmtMs } from './example-steps.js';
import type { ExampleOutcome, LastHeal } from './example-summary.js';
import { busyboxBin, pingOk, ReplyCounter } from './example-traffic.js';
import { findEndpoints } from './grpc.js';
import { localMeshSecurity } from './identity.js';
import { up, type MeshContext } from './mesh.js';
import { ip, netnsExists } from './netns.js';
import { readStatusFile, runPod } from './pods.js';
import { statusFileConnections } from './status.js';
import { readState } from './state.js';
import { baseEnv } from './supervisor.js';

export const NSE_POD = 'nse-kernel';
export const NSC_POD = 'nsc-kernel';
export const NSE_ADDR = '172.16.1.100';
export const NSC_ADDR = '172.16.1.101';

/** The seed's pinger: stops at the first missing ping or read timeout (busybox sh and ping). */
export const SEED_PINGER_SCRIPT = `
  PINGER_PATH=$1; rm -f "$PINGER_PATH"
  seq=0
  ping -i 0.2 ${NSE_ADDR} | while :; do
    read -t 1 line || { echo ping timeout; touch $PINGER_PATH; break; }
    seq1=$(echo $line | sed -n "s/.* seq=\\([0-9]\\+\\) .*/\\1/p")
    [ "$seq1" ] || continue
    [ "$seq" -eq "$seq1" ] || { echo missing $((seq1 - seq)) pings; touch $PINGER_PATH; break; }
    seq=$((seq1+1))
  done
`;

/** patch-nse.yaml and patch-nsc.yaml of the seed. */
const NSE_ENV = { NSM_CIDR_PREFIX: '172.16.1.100/31', NSM_SERVICE_NAMES: 'dataplane-interrupt', NSM_REGISTER_SERVICE: 'false' };
const NSC_ENV = { NSM_NETWORK_SERVICES: 'kernel://dataplane-interrupt/nsm-1' };
const POD_READY_TIMEOUT_MS = 60_000;
/** How long the pinger runs before the interruption, and the seed's bound on each wait after it. */
const PINGER_WARMUP_MS = 5000;
const SEED_WAIT_MS = 10_000;

/** What the steps of one run share. */
export interface SeedRun {
  readonly ctx: MeshContext;
  readonly netsvcYaml: string;
  /** Script of the `nsm` program. */
  readonly entry: string;
  readonly clock: Clock;
  /** The run's temp dir: the pinger's flag file and busybox applets. */
  readonly work: string;
  /** The file the seed pinger touches when it stops. */
  readonly pingerPath: string;
  /** Processes the steps started; killed at cleanup. */
  readonly children: ChildProcess[];
  /** The independent ping from the NSC pod, for the summary. */
  readonly counter: ReplyCounter;
  /** A mesh of this many nodes (NSE on node-2, NSC on node-1); undefined: the one-node mesh. */
  readonly nodes?: number;
  /** True when this run started the mesh (so cleanup stops it again). */
  meshStarted: boolean;
  pingerOut: string;
  /** When `nsm-1` was set down (wall-clock ms). */
  cutAt: number;
  /** Ms after `cutAt` at which the pinger stopped; -1 until it does. */
  pingerStopped: number;
  /** Follows the pinger's flag file from the interruption on; sets `pingerStopped`. */
  watchPinger: Promise<void>;
}

/** Where the example puts its pods in a mesh of nodes: the NSE on node-2, the NSC on node-1. */
export const NSE_NODE = 'node-2';
export const NSC_NODE = 'node-1';

export function newSeedRun(ctx: MeshContext, opts: { netsvcYaml: string; entry: string; nodes?: number }, work: string): SeedRun {
  return {
    ctx,
    ...(opts.nodes !== undefined ? { nodes: opts.nodes } : {}),
    netsvcYaml: opts.netsvcYaml,
    entry: opts.entry,
    clock: realClock,
    work,
    pingerPath: join(work, `done-${Math.floor(Math.random() * 32768)}`),
    children: [],
    counter: new ReplyCounter(NSC_POD, NSE_ADDR),
    meshStarted: false,
    pingerOut: '',
    cutAt: 0,
    pingerStopped: -1,
    watchPinger: Promise.resolve(),
  };
}

export interface SeedStep {
  readonly title: string;
  /** The local command the step stands for (the twin of the seed's kubectl step), if any. */
  readonly cmd?: string | ((run: SeedRun) => string);
  /** Does the step; resolves with its result line, throws why it failed. */
  readonly run: (run: SeedRun) => Promise<string>;
}

const envArgs = (env: Record<string, string>) => Object.entries(env).map(([k, v]) => `-e ${k}=${v}`).join(' ');

const nodeArg = (r: SeedRun, node: string) => (r.nodes !== undefined ? ` --node ${node}` : '');

export const SEED_STEPS: readonly SeedStep[] = [
  { title: 'Start the local mesh (registry, nsmgr, forwarder) — the seed\'s "basic setup"', cmd: (r) => `nsm up${r.nodes !== undefined ? ` --nodes ${r.nodes}` : ''}`, run: startMesh },
  { title: 'Create the test namespace: free pod names', run: checkPodsFree },
  { title: 'Register the NetworkService from netsvc.yaml', cmd: (r) => `nsm apply -f ${r.netsvcYaml}`, run: applyNetworkService },
  {
    title: 'Deploy the NSE (patch-nse: NSM_CIDR_PREFIX, NSM_SERVICE_NAMES, NSM_REGISTER_SERVICE)',
    cmd: (r) => `nsm run nse --pod ${NSE_POD}${nodeArg(r, NSE_NODE)} ${envArgs(NSE_ENV)} --wait`,
    run: deployNse,
  },
  { title: 'Deploy the NSC (patch-nsc: NSM_NETWORK_SERVICES) and wait until it is ready', cmd: (r) => `nsm run nsc --pod ${NSC_POD}${nodeArg(r, NSC_NODE)} ${envArgs(NSC_ENV)} --wait`, run: deployNsc },
  ...pingBothWays(''),
  {
    title: "Run the seed's pinger in the background (busybox sh + ping); it stops at the first missing ping",
    cmd: (r) => `ip netns exec ${NSC_POD} busybox sh -c '<the seed pinger>' - ${r.pingerPath}`,
    run: startPinger,
  },
  { title: 'Simulate a data-plane interruption', cmd: `ip netns exec ${NSC_POD} ip link set nsm-1 down`, run: interrupt },
  {
    title: 'Wait until the pinger stops (≤ 10 s): it saw the interruption',
    cmd: (r) => `timeout 10 sh -c 'while ! [ -f "${r.pingerPath}" ]; do sleep 1; done'`,
    run: waitPingerStopped,
  },
  // On Kubernetes each `kubectl exec` of the seed takes a good fraction of a second and the pod has a
  // default route, so a ping sent before the heal just waits; in a pod netns without a default route it
  // fails at once. So wait for the heal explicitly (the mesh does it by itself), then ping as the seed.
  { title: 'Wait for the mesh to heal by itself (≤ 10 s): first reply through nsm-1', run: waitHealed },
  ...pingBothWays(' (after the mesh healed by itself)'),
];

export const commandOf = (step: SeedStep, run: SeedRun): string | undefined => (typeof step.cmd === 'function' ? step.cmd(run) : step.cmd);

async function startMesh(run: SeedRun): Promise<string> {
  const r = await up({ ...run.ctx, say: () => undefined }, run.nodes !== undefined ? { nodes: run.nodes } : {});
  run.meshStarted = !r.already;
  if (run.nodes !== undefined && !r.topology?.nodes.some((n) => n.name === NSE_NODE)) {
    throw new Error(`the mesh already running in ${run.ctx.paths.dir} has no ${NSE_NODE}; stop it (nsm down) or run the example without --nodes`);
  }
  const mode = r.security === 'mtls' ? 'mTLS, SVIDs from the mesh\'s Workload API' : 'INSECURE (plaintext)';
  const nodes = r.topology ? `, ${r.topology.nodes.length} nodes on underlay ${r.topology.cidr}` : '';
  return r.already ? `already up: using it (${mode}${nodes})` : `up (supervisor pid ${r.supervisor.pid}, ${mode}${nodes})`;
}

async function checkPodsFree(run: SeedRun): Promise<string> {
  for (const pod of [NSC_POD, NSE_POD]) {
    if (netnsExists(pod) || readState(run.ctx.paths)?.pods[pod]) throw new Error(`pod ${pod} already exists (a kept run?): remove it with nsm stop-pod ${pod}, or ip netns del ${pod}`);
  }
  return `${NSC_POD} and ${NSE_POD} are free`;
}

async function applyNetworkService(run: SeedRun): Promise<string> {
  const out = await runNsm(run.entry, ['apply', '-f', run.netsvcYaml, '--run-dir', run.ctx.paths.dir]);
  return out.trim();
}

async function deployNse(run: SeedRun): Promise<string> {
  await runPod(run.ctx, { component: 'nse', pod: NSE_POD, env: NSE_ENV, wait: true, timeoutMs: POD_READY_TIMEOUT_MS, ...(run.nodes !== undefined ? { node: NSE_NODE } : {}) });
  const cli = localMeshSecurity(run.ctx.paths, readState(run.ctx.paths), run.ctx.hostname);
  const nses = await findEndpoints(run.ctx.paths.sockets.registry, cli.security, NSE_POD).finally(() => cli.close());
  const where = run.nodes !== undefined ? ` on ${NSE_NODE} (${nses[0]?.url ?? '?'})` : '';
  return `endpoint ${NSE_POD}${where} registered for ${nses[0]?.networkServiceNames.join(',') ?? 'dataplane-interrupt'}`;
}

async function deployNsc(run: SeedRun): Promise<string> {
  await runPod(run.ctx, { component: 'nsc', pod: NSC_POD, env: NSC_ENV, wait: true, timeoutMs: POD_READY_TIMEOUT_MS, ...(run.nodes !== undefined ? { node: NSC_NODE } : {}) });
  if (run.nodes === undefined) return `nsm-1 is up in ${NSC_POD}`;
  const status = readStatusFile(run.ctx.paths.podStatus(NSC_POD, 'nsc'));
  const path = statusFileConnections(status)[0]?.path?.pathSegments.map((g) => g.name) ?? [];
  return `nsm-1 is up in ${NSC_POD} on ${NSC_NODE}; path ${path.join(' -> ') || '?'} (${path.length} segments)`;
}

function pingBothWays(label: string): SeedStep[] {
  const ping = (from: string, to: string) => async () => {
    const r = await pingOk(from, to, 4);
    if (!r.ok) throw new Error(r.summary);
    return r.summary;
  };
  return [
    { title: `Ping from NSC to NSE${label}`, cmd: `ip netns exec ${NSC_POD} ping -c 4 ${NSE_ADDR}`, run: ping(NSC_POD, NSE_ADDR) },
    { title: `Ping from NSE to NSC${label}`, cmd: `ip netns exec ${NSE_POD} ping -c 4 ${NSC_ADDR}`, run: ping(NSE_POD, NSC_ADDR) },
  ];
}

/** Starts the independent ping and the seed's pinger; passes when the pinger ran 5 s without stopping. */
async function startPinger(run: SeedRun): Promise<string> {
  run.children.push(run.counter.start());
  const bin = busyboxBin(run.work);
  const pinger = spawn('ip', ['netns', 'exec', NSC_POD, '/bin/busybox', 'sh', '-c', SEED_PINGER_SCRIPT, '-', run.pingerPath], {
    env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  run.children.push(pinger);
  pinger.stdout!.on('data', (d: Buffer) => (run.pingerOut += d.toString()));
  await sleep(PINGER_WARMUP_MS);
  if (existsSync(run.pingerPath)) throw new Error(`pinger is done already: ${run.pingerOut.trim()}`);
  return 'running for 5 s without a missing ping';
}

/** Sets nsm-1 down in the NSC pod and starts watching for the pinger to stop. */
async function interrupt(run: SeedRun): Promise<string> {
  run.cutAt = run.clock.now();
  await ip(['netns', 'exec', NSC_POD, 'ip', 'link', 'set', 'nsm-1', 'down']);
  run.watchPinger = watchPinger(run);
  return 'nsm-1 is down';
}

async function watchPinger(run: SeedRun): Promise<void> {
  while (!existsSync(run.pingerPath) && run.clock.now() - run.cutAt < SEED_WAIT_MS) await sleep(20);
  if (existsSync(run.pingerPath)) run.pingerStopped = run.clock.now() - run.cutAt;
}

/** The seed's own loop: test for the flag file, then sleep 1 s, for at most 10 s. */
async function waitPingerStopped(run: SeedRun): Promise<string> {
  const until = run.clock.now() + SEED_WAIT_MS;
  while (!existsSync(run.pingerPath)) {
    if (run.clock.now() > until) throw new Error('the pinger did not stop within 10 s');
    await sleep(1000);
  }
  await run.watchPinger;
  return `pinger said "${run.pingerOut.trim().split('\n').at(-1)}" ${fmtMs(run.pingerStopped)} after the interruption`;
}

async function waitHealed(run: SeedRun): Promise<string> {
  const until = run.clock.now() + SEED_WAIT_MS;
  for (;;) {
    if ((await pingOk(NSC_POD, NSE_ADDR, 1)).ok) break;
    if (run.clock.now() > until) throw new Error('no reply through nsm-1 within 10 s of the interruption');
    await sleep(50);
  }
  const first = run.counter.replies.find((r) => r.t >= run.cutAt);
  return first ? `replies again: the independent ping's first reply came ${fmtMs(first.t - run.cutAt)} after the interruption` : 'replies again';
}

/** After the last step: stops the independent ping and gathers what the summary reports. */
export async function seedOutcome(run: SeedRun): Promise<ExampleOutcome> {
  await sleep(400);
  const counts = await run.counter.stop();
  const status = readStatusFile(run.ctx.paths.podStatus(NSC_POD, 'nsc')) as { heal?: { lastHeal?: LastHeal } } | undefined;
  return { cutAt: run.cutAt, pingerStopped: run.pingerStopped, heal: status?.heal?.lastHeal, counts, replies: run.counter.replies };
}

function runNsm(entry: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // the mesh's own identity (--run-dir), not whatever SPIFFE_ENDPOINT_SOCKET / NSM_* the shell has
    const c = spawn(process.execPath, [entry, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: baseEnv() });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(err.trim() || `exit ${code}`))));
  });
}
