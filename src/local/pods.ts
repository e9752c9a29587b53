/**
 * Local pods: a pod is a named netns; `nsm run nsc|nse --pod P` starts the component inside it
 * (`ip netns exec P node <nsm> <component>`, own session, output in `logs/<pod>-<component>.log`) and
 * records it in `mesh.json`. Nothing in the components depends on this: a plain `ip netns exec P nsm nsc`
 * works the same, `nsm run` only adds bookkeeping (pid, log, status file) and `--wait`.
 *
 * Env of a pod process: the `-e` values, plus, unless given: `NSM_CONNECT_TO=unix://<run-dir>/nsm.io.sock`
 * (a mesh of nodes: `unix://<run-dir>/nodes/<node>/nsm.io.sock` of the pod's `--node`, default `node-1`; an
 * unknown node is refused before anything is created), `NSM_NAME=<--name or pod>`, `POD_NAME=<pod>`,
 * `NODE_NAME=<hostname, or the pod's node>`,
 * `NSM_STATUS_FILE=<run-dir>/pods/<pod>-<component>.json` (the NSC writes its connection/heal status there),
 * and the mesh's identity: `SPIFFE_ENDPOINT_SOCKET=unix://<run-dir>/agent.sock` (the Workload API attests
 * the process by its netns: `spiffe://nsm.local/ns/<pod>/<nsc|nse>`) when the mesh is secure, or
 * `NSM_INSECURE=true` when it runs insecure — unless `-e` gives either variable.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { InvalidArgumentError, NotFoundError, UnavailableError } from '../core/errors.js';
import { sleep } from '../core/signals.js';
import { findEndpoints } from './grpc.js';
import { localMeshSecurity, meshSecurityOf } from './identity.js';
import { requireRoot, requireTools, runningSupervisor, stopPodProcesses, type MeshContext } from './mesh.js';
import { podNode } from './layout.js';
import { addNetns, deleteNetns, netnsExists, netnsInode, processNetnsInode } from './netns.js';
import { INFRA_NETNS_RE } from './nodes.js';
import { identityEnv, POD_COMPONENTS, POD_NAME_RE, type PodComponent } from './paths.js';
import { isRunning, recordFor, tail } from './proc.js';
import { baseEnv } from './supervisor.js';
import { readState, updateState, type PodProcessRecord } from './state.js';
import type { TransportSecurity } from '../security/tls.js';

export const DEFAULT_WAIT_TIMEOUT_MS = 30_000;

export interface RunPodOptions {
  readonly component: string;
  readonly pod: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly name?: string;
  /** The node whose nsmgr the pod uses (`--node`); default the first (`node-1`, or the one node). */
  readonly node?: string;
  readonly wait?: boolean;
  readonly timeoutMs?: number;
}

/** Parses `-e K=V` values. */
export function parseEnvPairs(pairs: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf('=');
    if (i <= 0) throw new InvalidArgumentError('-e', p, 'expected NAME=value');
    const k = p.slice(0, i);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new InvalidArgumentError('-e', p, 'not a valid env var name');
    out[k] = p.slice(i + 1);
  }
  return out;
}

/**
 * True when a status file says the process is ready: `state`/`status` is connected/registered/ready/up,
 * or `connected: true`, or every entry of `connections` has such a state.
 */
export function statusSaysReady(status: unknown): boolean {
  if (!status || typeof status !== 'object') return false;
  const s = status as Record<string, unknown>;
  const ok = (v: unknown) => typeof v === 'string' && ['connected', 'registered', 'ready', 'up'].includes(v.toLowerCase());
  if (ok(s.state) || ok(s.status) || s.connected === true) return true;
  const conns = Array.isArray(s.connections) ? s.connections : s.connections && typeof s.connections === 'object' ? Object.values(s.connections) : [];
  return conns.length > 0 && conns.every((c) => c && typeof c === 'object' && (ok((c as Record<string, unknown>).state) || (c as Record<string, unknown>).connected === true));
}

export function readStatusFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export async function runPod(ctx: MeshContext, o: RunPodOptions): Promise<PodProcessRecord> {
  const { paths, hostname } = ctx;
  if (!(POD_COMPONENTS as readonly string[]).includes(o.component)) {
    throw new InvalidArgumentError('component', o.component, `expected one of ${POD_COMPONENTS.join(', ')}`);
  }
  const component = o.component as PodComponent;
  if (!POD_NAME_RE.test(o.pod)) throw new InvalidArgumentError('--pod', o.pod, 'a netns name: letters, digits, . _ -, at most 63 characters');
  if (INFRA_NETNS_RE.test(o.pod)) throw new InvalidArgumentError('--pod', o.pod, 'names of the form nsm<6 hex>-node-<i> and nsm<6 hex>-ul are the netns of mesh nodes');
  requireRoot();
  requireTools(['ip']);
  const state = readState(paths);
  if (!runningSupervisor(state)) throw new UnavailableError(`the mesh is not up (run dir ${paths.dir}); start it with: nsm up`);
  const { node, nsmgrSocket } = podNode(paths, state, hostname, o.node);
  const onOther = state!.pods[o.pod]?.node;
  if (onOther !== undefined && onOther !== node && state!.pods[o.pod].processes.some((p) => isRunning(p))) {
    throw new InvalidArgumentError('--node', node, `pod ${o.pod} is on ${onOther}; a pod is on one node (stop it first: nsm stop-pod ${o.pod})`);
  }
  const busy = state!.pods[o.pod]?.processes.find((p) => p.component === component && isRunning(p));
  if (busy) throw new UnavailableError(`pod ${o.pod} already runs ${component} ${busy.name} (pid ${busy.pid}); stop it with: nsm stop-pod ${o.pod}`);

  let created = false;
  if (!netnsExists(o.pod)) {
    await addNetns(o.pod);
    created = true;
  }
  updateState(paths, hostname, (s) => {
    const prev = s.pods[o.pod];
    return {
      ...s,
      pods: {
        ...s.pods,
        [o.pod]: { netns: o.pod, ...(s.topology ? { node } : {}), createdNetns: (prev?.createdNetns ?? false) || created, processes: prev?.processes.filter((p) => isRunning(p)) ?? [] },
      },
    };
  });

  const given = o.env ?? {};
  const name = o.name ?? given.NSM_NAME ?? o.pod;
  const statusFile = paths.podStatus(o.pod, component);
  const identity = given.SPIFFE_ENDPOINT_SOCKET !== undefined || given.NSM_INSECURE !== undefined ? {} : identityEnv(paths, meshSecurityOf(state));
  const env: Record<string, string> = {
    ...baseEnv(),
    NSM_CONNECT_TO: `unix://${nsmgrSocket}`,
    NODE_NAME: node,
    ...identity,
    ...given,
    NSM_NAME: name,
    POD_NAME: o.pod,
    NSM_STATUS_FILE: statusFile,
  };
  mkdirSync(paths.pods, { recursive: true });
  mkdirSync(paths.logs, { recursive: true });
  try {
    unlinkSync(statusFile);
  } catch {
    /* none */
  }
  const logPath = paths.log(`${o.pod}-${component}`);
  const fd = openSync(logPath, 'a');
  let rec: PodProcessRecord;
  try {
    writeSync(fd, `--- nsm run: starting ${component} ${name} in pod ${o.pod} at ${new Date().toISOString()} ---\n`);
    const child = spawn('ip', ['netns', 'exec', o.pod, process.execPath, ctx.entry, component], { detached: true, stdio: ['ignore', fd, fd], env });
    if (child.pid === undefined) throw new UnavailableError(`cannot start ip netns exec ${o.pod} … ${component}`);
    child.unref();
    rec = { ...recordFor(child.pid), component, name, log: logPath, statusFile };
  } finally {
    closeSync(fd);
  }
  updateState(paths, hostname, (s) => {
    const pod = s.pods[o.pod] ?? { netns: o.pod, ...(s.topology ? { node } : {}), createdNetns: created, processes: [] };
    return { ...s, pods: { ...s.pods, [o.pod]: { ...pod, processes: [...pod.processes.filter((p) => isRunning(p)), rec] } } };
  });

  // `ip netns exec` enters the netns, then execs node; make sure it got there and did not fail at once.
  const want = netnsInode(o.pod);
  const deadline = Date.now() + 5000;
  while (processNetnsInode(rec.pid) !== want) {
    if (!isRunning(rec)) throw exitedError(rec, o.pod);
    if (Date.now() > deadline) throw new UnavailableError(`${component} (pid ${rec.pid}) did not enter netns ${o.pod} within 5 s`);
    await sleep(20);
  }
  if (o.wait) await waitReady(ctx, rec, o.pod, o.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS);
  return rec;
}

function exitedError(rec: PodProcessRecord, pod: string): Error {
  return new UnavailableError(`${rec.component} ${rec.name} in pod ${pod} exited; last lines of ${rec.log}:\n${tail(rec.log)}`);
}

/** nsc: its status file says connected; nse: the registry knows its name. */
async function waitReady(ctx: MeshContext, rec: PodProcessRecord, pod: string, timeoutMs: number): Promise<void> {
  const cli = rec.component === 'nse' ? localMeshSecurity(ctx.paths, readState(ctx.paths), ctx.hostname) : undefined;
  try {
    await pollReady(ctx, rec, pod, timeoutMs, cli?.security);
  } finally {
    cli?.close();
  }
}

async function pollReady(ctx: MeshContext, rec: PodProcessRecord, pod: string, timeoutMs: number, security: TransportSecurity | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isRunning(rec)) throw exitedError(rec, pod);
    if (rec.component === 'nsc') {
      if (statusSaysReady(readStatusFile(rec.statusFile))) return;
    } else {
      try {
        if ((await findEndpoints(ctx.paths.sockets.registry, security!, rec.name, 1000)).some((e) => e.name === rec.name)) return;
      } catch {
        /* registry restarting; retry */
      }
    }
    if (Date.now() >= deadline) {
      const what = rec.component === 'nsc' ? `${rec.statusFile} to say connected` : `the registry to list endpoint ${rec.name}`;
      throw new UnavailableError(`${rec.component} ${rec.name} in pod ${pod} not ready after ${Math.round(timeoutMs / 1000)} s (waited for ${what}); it keeps running (stop it with: nsm stop-pod ${pod}); last lines of ${rec.log}:\n${tail(rec.log)}`);
    }
    await sleep(200);
  }
}

/** Stops the pod's processes (NSCs first) and deletes its netns if the mesh created it. */
export async function stopPod(ctx: MeshContext, pod: string): Promise<{ stopped: number; deletedNetns: boolean }> {
  const { paths, hostname } = ctx;
  const rec = readState(paths)?.pods[pod];
  if (!rec) throw new NotFoundError(`no pod ${pod} in ${paths.state}${netnsExists(pod) ? ' (the netns exists, but the mesh did not start anything in it)' : ''}`);
  requireRoot();
  const stopped = rec.processes.filter((p) => isRunning(p)).length;
  await stopPodProcesses(rec);
  let deletedNetns = false;
  if (rec.createdNetns && netnsExists(rec.netns)) {
    await deleteNetns(rec.netns);
    deletedNetns = true;
  }
  for (const p of rec.processes) {
    try {
      unlinkSync(p.statusFile);
    } catch {
      /* none */
    }
  }
  updateState(paths, hostname, (s) => {
    const { [pod]: _gone, ...rest } = s.pods;
    return { ...s, pods: rest };
  });
  return { stopped, deletedNetns };
}
