/**
 * `mesh.json`: what the local mesh started (supervisor, node components, pods). Several processes
 * update it (the supervisor on each restart, `nsm run`, `nsm stop-pod`, `nsm down`), so every
 * read-modify-write holds `mesh.lock` (O_EXCL; a lock whose holder is dead is broken), and every write
 * goes to a temp file renamed over the old one, so a reader never sees half a file.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { NsmError } from '../core/errors.js';
import { procStartTime, type ProcRecord } from './proc.js';
import type { Topology } from './nodes.js';
import type { ComponentName, MeshSecurity, PodComponent, RunPaths } from './paths.js';

export interface ComponentRecord extends ProcRecord {
  readonly name: ComponentName;
  /** The node it runs on (a mesh of nodes: `node-<i>`; absent in the one-node layout). */
  readonly node?: string;
  readonly restarts: number;
  readonly socket: string;
  readonly log: string;
  /** `running` while a process exists; `backoff` between a crash and the next start. */
  readonly phase: 'running' | 'backoff';
  readonly lastExit?: { readonly code: number | null; readonly signal: string | null; readonly at: string };
}

export interface PodProcessRecord extends ProcRecord {
  readonly component: PodComponent;
  /** NSM_NAME of the process. */
  readonly name: string;
  readonly log: string;
  readonly statusFile: string;
}

export interface PodRecord {
  readonly netns: string;
  /** The node whose nsmgr its processes use (a mesh of nodes; absent in the one-node layout). */
  readonly node?: string;
  /** The mesh created the netns (so `stop-pod`/`down` delete it). */
  readonly createdNetns: boolean;
  readonly processes: readonly PodProcessRecord[];
}

export interface MeshState {
  readonly version: 1;
  readonly runDir: string;
  readonly hostname: string;
  readonly supervisor?: ProcRecord;
  /** `mtls` (SVIDs from the mesh's own Workload API) or `insecure` (`nsm up --insecure`); absent: written by a plaintext-only nsm. */
  readonly security?: MeshSecurity;
  /** The Workload API socket components and pods get as SPIFFE_ENDPOINT_SOCKET (secure meshes). */
  readonly agentSocket?: string;
  /** Keyed by slot id: `registry`, `nsmgr`, `forwarder` (one node) or `registry`, `<node>/nsmgr`, `<node>/forwarder`. */
  readonly components: Readonly<Record<string, ComponentRecord | undefined>>;
  readonly pods: Readonly<Record<string, PodRecord>>;
  /** The nodes and underlay of a mesh of nodes (`nsm up --nodes N`); absent in the one-node layout. */
  readonly topology?: Topology;
}

export function emptyState(runDir: string, hostname: string): MeshState {
  return { version: 1, runDir, hostname, components: {}, pods: {} };
}

export function readState(paths: RunPaths): MeshState | undefined {
  let raw: string;
  try {
    raw = readFileSync(paths.state, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const s = JSON.parse(raw) as MeshState;
    return { ...s, components: s.components ?? {}, pods: s.pods ?? {} };
  } catch (err) {
    throw new NsmError(`${paths.state} is not valid JSON; move it away if no mesh runs`, { cause: err });
  }
}

export function writeState(paths: RunPaths, state: MeshState): void {
  writeFileAtomic(paths.state, JSON.stringify(state, null, 2) + '\n');
}

export function writeFileAtomic(path: string, data: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode: 0o644 });
  renameSync(tmp, path);
}

/** Read-modify-write under the lock. `fn` returns the new state, or `null` to delete the file. */
export function updateState(paths: RunPaths, hostname: string, fn: (s: MeshState) => MeshState | null): MeshState | null {
  return withLock(paths, () => {
    const cur = readState(paths) ?? emptyState(paths.dir, hostname);
    const next = fn(cur);
    if (next === null) {
      try {
        unlinkSync(paths.state);
      } catch {
        /* gone */
      }
    } else writeState(paths, next);
    return next;
  });
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function withLock<T>(paths: RunPaths, fn: () => T): T {
  mkdirSync(paths.dir, { recursive: true });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const fd = openSync(paths.lock, 'wx', 0o644);
      writeSync(fd, `${process.pid} ${procStartTime(process.pid) ?? ''}\n`);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (lockIsStale(paths.lock)) {
      try {
        unlinkSync(paths.lock);
      } catch {
        /* someone else broke it */
      }
      continue;
    }
    if (Date.now() > deadline) throw new NsmError(`${paths.lock} is held for more than 10 s; remove it if no nsm command runs`);
    sleepSync(20);
  }
  try {
    return fn();
  } finally {
    try {
      unlinkSync(paths.lock);
    } catch {
      /* gone */
    }
  }
}

function lockIsStale(lock: string): boolean {
  try {
    const [pid, start] = readFileSync(lock, 'utf8').trim().split(' ').map(Number);
    if (!pid) return Date.now() - statSync(lock).mtimeMs > 2000;
    const t = procStartTime(pid);
    return t === undefined || (Number.isFinite(start) && start !== t);
  } catch {
    return !existsSync(lock) ? false : true;
  }
}
