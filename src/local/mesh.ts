/**
 * `nsm up` and `nsm down` for the local mesh. `up` checks root and system tools, refuses sockets held
 * by other processes (naming pid and command), starts the supervisor detached (own session, output in
 * `logs/supervisor.log`) and returns when registry, nsmgr and forwarder answer Health SERVING; on
 * failure it rolls back (stops what it started) and names the component and the tail of its log.
 * `down` stops pods (NSCs first, so they Close their connections, then NSEs), then the supervisor, then
 * any component left over, deletes the netns the mesh created, removes sockets, and waits until no
 * nsm-ts link is left. Only processes recorded in `mesh.json` with a matching start time are signalled.
 *
 * Nodes: `up` with `nodes` (`nsm up --nodes N`) first creates the underlay and the nodes' netns
 * (local/nodes.ts), records the topology in `mesh.json`, and the supervisor runs each node's components in
 * its netns (local/layout.ts); `down` (and a failed `up`) stops what still runs in those netns and deletes
 * them. Without `nodes` the layout is the one-node mesh in the host netns, as before.
 *
 * Security: `up` is secure unless asked (`insecure: true`, `nsm up --insecure`): it creates the mesh's CA
 * in the run dir on the first start (local/identity.ts), records `security` in `mesh.json`, and checks the
 * components' health over mTLS with a CLI SVID. `down` removes the Workload API socket and the CA.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError, UnavailableError } from '../core/errors.js';
import { socketAlive } from '../core/transport.js';
import { sleep } from '../core/signals.js';
import { checkHealth } from './grpc.js';
import { loadOrCreateCa, localMeshSecurity, meshSecurityOf, removeCa } from './identity.js';
import { layoutOf, meshLayout, type ComponentSlot } from './layout.js';
import { deleteNetns, netnsExists, waitLinksGone } from './netns.js';
import {
  checkHostFree,
  createTopology,
  DEFAULT_UNDERLAY_CIDR,
  destroyTopology,
  infraAlias,
  planTopology,
  processesInNetns,
  topologyNetns,
  wireguardSocketsOf,
  type Topology,
} from './nodes.js';
import type { MeshSecurity, RunPaths } from './paths.js';
import {
  cmdline,
  isRoot,
  isRunning,
  missingToolsMessage,
  NOT_ROOT_MESSAGE,
  recordFor,
  signalRecorded,
  socketOwner,
  SYSTEM_TOOLS,
  tail,
  terminate,
  waitGone,
  type ProcRecord,
} from './proc.js';
import { readState, updateState, type ComponentRecord, type MeshState, type PodRecord } from './state.js';
import type { TransportSecurity } from '../security/tls.js';
import { removeStaleSocket } from './supervisor.js';

export const DEFAULT_UP_TIMEOUT_MS = 20_000;
export const POD_STOP_GRACE_MS = 5000;
export const SUPERVISOR_STOP_TIMEOUT_MS = 30_000;
/** `up` gives up early when a component exits this often before serving. */
export const CRASH_LOOP_RESTARTS = 3;

export interface MeshContext {
  readonly paths: RunPaths;
  readonly hostname: string;
  /** Script of the `nsm` program. */
  readonly entry: string;
  readonly say: (line: string) => void;
}

export function requireRoot(): void {
  if (!isRoot()) throw new PermissionDeniedError(NOT_ROOT_MESSAGE);
}

export function requireTools(tools?: readonly string[]): void {
  const msg = missingToolsMessage(tools);
  if (msg) throw new NotFoundError(msg);
}

/** The running supervisor, if any. */
export function runningSupervisor(state: MeshState | undefined): ProcRecord | undefined {
  return state?.supervisor && isRunning(state.supervisor) ? state.supervisor : undefined;
}

function isSocket(path: string): boolean {
  try {
    return lstatSync(path).isSocket();
  } catch {
    return false;
  }
}

export interface UpOptions {
  readonly timeoutMs?: number;
  /** Plaintext everywhere (every component gets NSM_INSECURE=true); only when asked for. */
  readonly insecure?: boolean;
  /** A mesh of this many nodes (`--nodes`, local/nodes.ts); absent: the one-node layout in the host netns. */
  readonly nodes?: number;
  /** The underlay network of a mesh of nodes (`--underlay-cidr`); default DEFAULT_UNDERLAY_CIDR. */
  readonly underlayCidr?: string;
}

export interface UpResult {
  readonly already: boolean;
  readonly supervisor: ProcRecord;
  readonly security: MeshSecurity;
  /** This start created the mesh's CA (first start after `nsm down`). */
  readonly caCreated: boolean;
  /** The nodes and underlay of a mesh of nodes (the running one's when `already`). */
  readonly topology?: Topology;
}

/** `--nodes` / `--underlay-cidr` as a topology of this run dir; undefined for the one-node layout. */
export function topologyFor(paths: RunPaths, options: UpOptions): Topology | undefined {
  if (options.nodes === undefined) {
    if (options.underlayCidr !== undefined) throw new InvalidArgumentError('--underlay-cidr', options.underlayCidr, 'only with --nodes (the one-node mesh has no underlay)');
    return undefined;
  }
  return planTopology(paths.dir, options.nodes, options.underlayCidr ?? DEFAULT_UNDERLAY_CIDR);
}

export async function up(ctx: MeshContext, options: UpOptions = {}): Promise<UpResult> {
  const { paths, hostname, say } = ctx;
  const timeoutMs = options.timeoutMs ?? DEFAULT_UP_TIMEOUT_MS;
  const security: MeshSecurity = options.insecure ? 'insecure' : 'mtls';
  const topology = topologyFor(paths, options);
  requireRoot();
  requireTools(topology ? [...Object.keys(SYSTEM_TOOLS), 'ethtool'] : undefined);
  const slots = meshLayout(paths, hostname, security, topology);
  const longest = slots.map((s) => s.socket).reduce((a, b) => (Buffer.byteLength(b) > Buffer.byteLength(a) ? b : a));
  if (Buffer.byteLength(longest) > 107) throw new InvalidArgumentError('--run-dir', paths.dir, `socket path ${longest} is longer than 107 bytes; choose a shorter run dir`);
  mkdirSync(paths.logs, { recursive: true });
  mkdirSync(paths.pods, { recursive: true });
  const prev = readState(paths);
  const sup = runningSupervisor(prev);
  if (sup) return { already: true, supervisor: sup, security: meshSecurityOf(prev), caCreated: false, topology: prev?.topology };

  // Components left by a supervisor that died: ours (recorded, same start time), so stop them.
  const orphans = Object.values(prev?.components ?? {}).filter((c): c is ComponentRecord => isRunning(c));
  if (orphans.length > 0) {
    say(`stopping ${orphans.map((c) => `${c.node ? `${c.node}/` : ''}${c.name} (pid ${c.pid})`).join(', ')} left by a previous supervisor`);
    await terminate(orphans, POD_STOP_GRACE_MS);
  }
  if (prev?.topology) {
    const left = await teardownTopology(ctx, prev.topology);
    if (left.length > 0) throw new UnavailableError(`the nodes of the previous mesh in ${paths.dir} are still there: ${left.join(', ')}`);
  }
  for (const slot of slots) {
    if (isSocket(slot.socket) && (await socketAlive(slot.socket))) {
      const owner = await socketOwner(slot.socket);
      throw new UnavailableError(
        `socket ${slot.socket} (${slot.id}) is in use by ${owner ? `pid ${owner.pid} (${owner.command || '?'})` : 'another process'}; stop that process, or use another --run-dir`,
      );
    }
  }
  if (topology) await createNodes(ctx, topology);

  const caCreated = security === 'mtls' && loadOrCreateCa(paths).created;
  let supervisor: ProcRecord;
  try {
    supervisor = spawnSupervisor(ctx, security);
  } catch (err) {
    if (topology) await teardownTopology(ctx, topology);
    throw err;
  }
  updateState(paths, hostname, (s) => ({ ...s, hostname, security, supervisor, ...(topology ? { topology } : {}) }));
  const probe = localMeshSecurity(paths, { ...emptyStateFor(paths, hostname), security }, hostname);
  try {
    await waitUp(ctx, supervisor, slots, probe.security, timeoutMs);
  } finally {
    probe.close();
  }
  return { already: false, supervisor, security, caCreated, ...(topology ? { topology } : {}) };
}

/** The underlay and the nodes' netns; refuses netns of these names that exist already (a mesh of this run dir whose state is gone). */
async function createNodes(ctx: MeshContext, topology: Topology): Promise<void> {
  await checkHostFree(topology.cidr);
  const taken = topologyNetns(topology).filter(netnsExists);
  if (taken.length > 0) {
    throw new UnavailableError(
      `netns ${taken.join(', ')} already exist${taken.length === 1 ? 's' : ''} (a mesh of run dir ${ctx.paths.dir} whose state is gone?); delete ${taken.length === 1 ? 'it' : 'them'} with ip netns delete, or use another --run-dir`,
    );
  }
  for (const n of topology.nodes) mkdirSync(ctx.paths.nodeSockets(n.name).dir, { recursive: true });
  await createTopology(topology, infraAlias(ctx.paths.dir, ctx.entry));
}

function spawnSupervisor(ctx: MeshContext, security: MeshSecurity): ProcRecord {
  const { paths } = ctx;
  const fd = openSync(paths.log('supervisor'), 'a');
  try {
    const child = spawn(process.execPath, [ctx.entry, 'supervise', '--run-dir', paths.dir, ...(security === 'insecure' ? ['--insecure'] : [])], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: process.env,
    });
    if (child.pid === undefined) throw new UnavailableError(`cannot start the supervisor (${process.execPath} ${ctx.entry} supervise)`);
    child.unref();
    return recordFor(child.pid);
  } finally {
    closeSync(fd);
  }
}

function emptyStateFor(paths: RunPaths, hostname: string): MeshState {
  return { version: 1, runDir: paths.dir, hostname, components: {}, pods: {} };
}

/** Waits until every component answers Health SERVING; rolls back and throws naming the component otherwise. */
async function waitUp(ctx: MeshContext, supervisor: ProcRecord, slots: readonly ComponentSlot[], security: TransportSecurity, timeoutMs: number): Promise<void> {
  const { paths } = ctx;
  const logPath = paths.log('supervisor');
  const deadline = Date.now() + timeoutMs;
  const pending = new Map(slots.map((s) => [s.id, s]));
  while (pending.size > 0) {
    if (!isRunning(supervisor)) {
      await rollback(ctx, supervisor);
      throw new UnavailableError(`the supervisor (pid ${supervisor.pid}) exited during start; last lines of ${logPath}:\n${tail(logPath)}`);
    }
    const health = await Promise.all([...pending.values()].map(async (s) => [s.id, await checkHealth(s.socket, security, 500)] as const));
    for (const [id, h] of health) if (h === 'SERVING') pending.delete(id);
    if (pending.size === 0) break;
    const components = readState(paths)?.components ?? {};
    const looping = [...pending.keys()].map((id) => components[id]).find((c) => c && c.restarts >= CRASH_LOOP_RESTARTS);
    if (looping) {
      await rollback(ctx, supervisor);
      const exit = looping.lastExit ? (looping.lastExit.signal ?? `code ${looping.lastExit.code}`) : '?';
      throw new UnavailableError(
        `${looping.node ? `${looping.node}/` : ''}${looping.name} keeps exiting during start (${looping.restarts} restarts, last exit ${exit}); the mesh was stopped again. Last lines of ${looping.log}:\n${tail(looping.log)}`,
      );
    }
    if (Date.now() >= deadline) {
      const slot = [...pending.values()][0];
      await rollback(ctx, supervisor);
      throw new UnavailableError(
        `${slot.id} did not answer Health SERVING on ${slot.socket} within ${Math.round(timeoutMs / 1000)} s; the mesh was stopped again. Last lines of ${slot.log}:\n${tail(slot.log)}`,
      );
    }
    await sleep(150);
  }
}

/** Stops what `up` started; the mesh never came up, so its nodes and its CA go too. */
async function rollback(ctx: MeshContext, supervisor: ProcRecord): Promise<void> {
  const state = readState(ctx.paths);
  await stopSupervisor(ctx, supervisor);
  if (state?.topology) await teardownTopology(ctx, state.topology);
  removeCa(ctx.paths);
  updateState(ctx.paths, ctx.hostname, () => null);
}

async function stopSupervisor(ctx: MeshContext, supervisor: ProcRecord | undefined): Promise<void> {
  const { paths } = ctx;
  if (supervisor && signalRecorded(supervisor, 'SIGTERM')) {
    if (!(await waitGone([supervisor], SUPERVISOR_STOP_TIMEOUT_MS))) {
      ctx.say(`supervisor (pid ${supervisor.pid}) did not stop in ${SUPERVISOR_STOP_TIMEOUT_MS / 1000} s; SIGKILL`);
      signalRecorded(supervisor, 'SIGKILL');
      await waitGone([supervisor], 2000);
    }
  }
  const state = readState(paths);
  const left = Object.values(state?.components ?? {}).filter((c): c is ComponentRecord => isRunning(c));
  if (left.length > 0) await terminate(left, POD_STOP_GRACE_MS);
  for (const slot of layoutOf(paths, state, ctx.hostname)) await removeStaleSocket(slot.socket);
  await removeStaleSocket(paths.agentSocket);
}

/**
 * Removes a mesh's nodes after its components stopped: whatever still runs in a node's netns (a
 * wireguard-go a forwarder started, anything else: found by netns, not by name) is stopped and the UAPI
 * sockets of such wireguard-go processes are removed, then the node and underlay netns are deleted (their
 * veths and any tunnel device left in them go too). Returns what is still there.
 */
export async function teardownTopology(ctx: MeshContext, topology: Topology): Promise<string[]> {
  const names = topologyNetns(topology);
  const strays = processesInNetns(names);
  const wgSockets = await wireguardSocketsOf(new Set(strays.map((p) => p.pid)));
  const recs = strays.map((p) => ({ ...recordFor(p.pid), netns: p.netns, command: cmdline(p.pid) }));
  if (recs.length > 0) {
    ctx.say(`stopping ${recs.map((r) => `pid ${r.pid} (${r.command || '?'}) in netns ${r.netns}`).join(', ')}`);
    await terminate(recs, POD_STOP_GRACE_MS);
  }
  for (const sock of wgSockets) rmSync(sock, { force: true });
  const deleted = await destroyTopology(topology);
  if (deleted.length > 0) ctx.say(`deleted node netns ${deleted.join(', ')}`);
  rmSync(join(ctx.paths.dir, 'nodes'), { recursive: true, force: true });
  return [
    ...names.filter(netnsExists).map((n) => `netns ${n}`),
    ...recs.filter((r) => isRunning(r)).map((r) => `pid ${r.pid} (${r.command || '?'})`),
    ...wgSockets.filter((s) => existsSync(s)),
  ];
}

/** Stops one pod's processes (NSCs, then NSEs, then anything else) and deletes its netns if the mesh created it. */
export async function stopPodProcesses(pod: PodRecord, graceMs = POD_STOP_GRACE_MS): Promise<void> {
  const order = ['nsc', 'nse'];
  const rank = (c: string) => (order.includes(c) ? order.indexOf(c) : order.length);
  for (let r = 0; r <= order.length; r++) {
    const procs = pod.processes.filter((p) => rank(p.component) === r && isRunning(p));
    if (procs.length > 0) await terminate(procs, graceMs);
  }
}

function isUp(state: MeshState | undefined): boolean {
  const pods = Object.values(state?.pods ?? {});
  return (
    !!runningSupervisor(state) ||
    Object.values(state?.components ?? {}).some((c) => isRunning(c)) ||
    pods.some((p) => p.processes.some((x) => isRunning(x)) || (p.createdNetns && netnsExists(p.netns))) ||
    (state?.topology !== undefined && topologyNetns(state.topology).some(netnsExists))
  );
}

export async function down(ctx: MeshContext): Promise<{ nothing: boolean; leftovers: string[] }> {
  const { paths, hostname, say } = ctx;
  const state = readState(paths);
  const pods = Object.entries(state?.pods ?? {});
  if (!isUp(state)) {
    for (const slot of layoutOf(paths, state, hostname)) await removeStaleSocket(slot.socket);
    await removeStaleSocket(paths.agentSocket);
    if (state) updateState(paths, hostname, () => null);
    removeCa(paths);
    return { nothing: true, leftovers: [] };
  }
  requireRoot();

  // Pods: every NSC of every pod first (they Close their connections while nsmgr and forwarder run), then NSEs.
  const all = pods.flatMap(([, p]) => p.processes);
  for (const component of ['nsc', 'nse', undefined] as const) {
    const procs = all.filter((p) => (component ? p.component === component : p.component !== 'nsc' && p.component !== 'nse') && isRunning(p));
    if (procs.length === 0) continue;
    say(`stopping ${procs.map((p) => `${p.component} ${p.name} (pid ${p.pid})`).join(', ')}`);
    await terminate(procs, POD_STOP_GRACE_MS);
  }
  const deleted: string[] = [];
  for (const [name, p] of pods) {
    if (p.createdNetns && netnsExists(p.netns)) {
      await deleteNetns(p.netns);
      deleted.push(p.netns);
    }
    updateState(paths, hostname, (s) => {
      const { [name]: _gone, ...rest } = s.pods;
      return { ...s, pods: rest };
    });
  }
  if (deleted.length > 0) say(`deleted netns ${deleted.join(', ')}`);

  const sup = runningSupervisor(state);
  if (sup) say(`stopping supervisor (pid ${sup.pid}) and components`);
  await stopSupervisor(ctx, sup);
  const nodesLeft = state?.topology ? await teardownTopology(ctx, state.topology) : [];

  const kept = pods.filter(([, p]) => !p.createdNetns).map(([, p]) => p.netns);
  const leftovers = [...(await waitLinksGone(kept, deleted, 5000)), ...nodesLeft];
  updateState(paths, hostname, () => null);
  // The trust of a mesh ends with it: the next `nsm up` makes a new root (see local/identity.ts).
  removeCa(paths);
  return { nothing: false, leftovers };
}
