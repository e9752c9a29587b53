/**
 * `nsm up` and `nsm down` for the local mesh. `up` checks root and system tools, refuses sockets held
 * by other processes (naming pid and command), starts the supervisor detached (own session, output in
 * `logs/supervisor.log`) and returns when registry, nsmgr and forwarder answer Health SERVING; on
 * failure it rolls back (stops what it started) and names the component and the tail of its log.
 * `down` stops pods (NSCs first, so they Close their connections, then NSEs), then the supervisor, then
 * any component left over, deletes the netns the mesh created, removes sockets, and waits until no
 * nsm-ts link is left. Only processes recorded in `mesh.json` with a matching start time are signalled.
 *
 * Security: `up` is secure unless asked (`insecure: true`, `nsm up --insecure`): it creates the mesh's CA
 * in the run dir on the first start (local/identity.ts), records `security` in `mesh.json`, and checks the
 * components' health over mTLS with a CLI SVID. `down` removes the Workload API socket and the CA.
 */
import { spawn } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, openSync } from 'node:fs';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError, UnavailableError } from '../core/errors.js';
import { socketAlive } from '../core/transport.js';
import { sleep } from '../core/signals.js';
import { checkHealth } from './grpc.js';
import { loadOrCreateCa, localMeshSecurity, meshSecurityOf, removeCa } from './identity.js';
import { deleteNetns, netnsExists, waitLinksGone } from './netns.js';
import { COMPONENTS, type ComponentName, type MeshSecurity, type RunPaths } from './paths.js';
import { isRoot, isRunning, missingToolsMessage, NOT_ROOT_MESSAGE, recordFor, signalRecorded, socketOwner, tail, terminate, waitGone, type ProcRecord } from './proc.js';
import { readState, updateState, type MeshState, type PodRecord } from './state.js';
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
}

export interface UpResult {
  readonly already: boolean;
  readonly supervisor: ProcRecord;
  readonly security: MeshSecurity;
  /** This start created the mesh's CA (first start after `nsm down`). */
  readonly caCreated: boolean;
}

export async function up(ctx: MeshContext, options: UpOptions = {}): Promise<UpResult> {
  const { paths, hostname, say } = ctx;
  const timeoutMs = options.timeoutMs ?? DEFAULT_UP_TIMEOUT_MS;
  const security: MeshSecurity = options.insecure ? 'insecure' : 'mtls';
  requireRoot();
  requireTools();
  const longest = paths.sockets.forwarder;
  if (Buffer.byteLength(longest) > 107) throw new InvalidArgumentError('--run-dir', paths.dir, `socket path ${longest} is longer than 107 bytes; choose a shorter run dir`);
  mkdirSync(paths.logs, { recursive: true });
  mkdirSync(paths.pods, { recursive: true });
  const prev = readState(paths);
  const sup = runningSupervisor(prev);
  if (sup) return { already: true, supervisor: sup, security: meshSecurityOf(prev), caCreated: false };

  // Components left by a supervisor that died: ours (recorded, same start time), so stop them.
  const orphans = Object.values(prev?.components ?? {}).filter((c) => isRunning(c));
  if (orphans.length > 0) {
    say(`stopping ${orphans.map((c) => `${c.name} (pid ${c.pid})`).join(', ')} left by a previous supervisor`);
    await terminate(orphans, POD_STOP_GRACE_MS);
  }
  for (const name of COMPONENTS) {
    const path = paths.sockets[name];
    if (isSocket(path) && (await socketAlive(path))) {
      const owner = await socketOwner(path);
      throw new UnavailableError(
        `socket ${path} (${name}) is in use by ${owner ? `pid ${owner.pid} (${owner.command || '?'})` : 'another process'}; stop that process, or use another --run-dir`,
      );
    }
  }

  const caCreated = security === 'mtls' && loadOrCreateCa(paths).created;
  const logPath = paths.log('supervisor');
  const fd = openSync(logPath, 'a');
  let supervisor: ProcRecord;
  try {
    const child = spawn(process.execPath, [ctx.entry, 'supervise', '--run-dir', paths.dir, ...(security === 'insecure' ? ['--insecure'] : [])], {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: process.env,
    });
    if (child.pid === undefined) throw new UnavailableError(`cannot start the supervisor (${process.execPath} ${ctx.entry} supervise)`);
    child.unref();
    supervisor = recordFor(child.pid);
  } finally {
    closeSync(fd);
  }
  updateState(paths, hostname, (s) => ({ ...s, hostname, security, supervisor }));
  const probe = localMeshSecurity(paths, { ...emptyStateFor(paths, hostname), security }, hostname);
  try {
    await waitUp(ctx, supervisor, probe.security, timeoutMs);
  } finally {
    probe.close();
  }
  return { already: false, supervisor, security, caCreated };
}

function emptyStateFor(paths: RunPaths, hostname: string): MeshState {
  return { version: 1, runDir: paths.dir, hostname, components: {}, pods: {} };
}

/** Waits until every component answers Health SERVING; rolls back and throws naming the component otherwise. */
async function waitUp(ctx: MeshContext, supervisor: ProcRecord, security: TransportSecurity, timeoutMs: number): Promise<void> {
  const { paths } = ctx;
  const logPath = paths.log('supervisor');
  const deadline = Date.now() + timeoutMs;
  const pending = new Set<ComponentName>(COMPONENTS);
  while (pending.size > 0) {
    if (!isRunning(supervisor)) {
      await rollback(ctx, supervisor);
      throw new UnavailableError(`the supervisor (pid ${supervisor.pid}) exited during start; last lines of ${logPath}:\n${tail(logPath)}`);
    }
    for (const name of [...pending]) if ((await checkHealth(paths.sockets[name], security, 500)) === 'SERVING') pending.delete(name);
    if (pending.size === 0) break;
    const looping = COMPONENTS.map((c) => readState(paths)?.components[c]).find((c) => c && pending.has(c.name) && c.restarts >= CRASH_LOOP_RESTARTS);
    if (looping) {
      await rollback(ctx, supervisor);
      const exit = looping.lastExit ? (looping.lastExit.signal ?? `code ${looping.lastExit.code}`) : '?';
      throw new UnavailableError(
        `${looping.name} keeps exiting during start (${looping.restarts} restarts, last exit ${exit}); the mesh was stopped again. Last lines of ${looping.log}:\n${tail(looping.log)}`,
      );
    }
    if (Date.now() >= deadline) {
      const name = COMPONENTS.find((c) => pending.has(c))!;
      await rollback(ctx, supervisor);
      throw new UnavailableError(
        `${name} did not answer Health SERVING on ${paths.sockets[name]} within ${Math.round(timeoutMs / 1000)} s; the mesh was stopped again. Last lines of ${paths.log(name)}:\n${tail(paths.log(name))}`,
      );
    }
    await sleep(150);
  }
}

/** Stops what `up` started; the mesh never came up, so its CA goes too. */
async function rollback(ctx: MeshContext, supervisor: ProcRecord): Promise<void> {
  await stopSupervisor(ctx, supervisor);
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
  const left = Object.values(readState(paths)?.components ?? {}).filter((c) => isRunning(c));
  if (left.length > 0) await terminate(left, POD_STOP_GRACE_MS);
  for (const name of COMPONENTS) await removeStaleSocket(paths.sockets[name]);
  await removeStaleSocket(paths.agentSocket);
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

export async function down(ctx: MeshContext): Promise<{ nothing: boolean; leftovers: string[] }> {
  const { paths, hostname, say } = ctx;
  const state = readState(paths);
  const pods = Object.entries(state?.pods ?? {});
  const running =
    !!runningSupervisor(state) ||
    Object.values(state?.components ?? {}).some((c) => isRunning(c)) ||
    pods.some(([, p]) => p.processes.some((x) => isRunning(x)) || (p.createdNetns && netnsExists(p.netns)));
  if (!running) {
    for (const name of [...COMPONENTS.map((c) => paths.sockets[c]), paths.agentSocket]) await removeStaleSocket(name);
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

  const kept = pods.filter(([, p]) => !p.createdNetns).map(([, p]) => p.netns);
  const leftovers = await waitLinksGone(kept, deleted, 5000);
  updateState(paths, hostname, () => null);
  // The trust of a mesh ends with it: the next `nsm up` makes a new root (see local/identity.ts).
  removeCa(paths);
  return { nothing: false, leftovers };
}
