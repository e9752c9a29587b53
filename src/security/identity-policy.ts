/**
 * The identity policy of the mesh's own Workload API: from an attested caller (attest.ts) and what the
 * mesh knows (the processes its supervisor started, the network namespaces that are its pods) to one
 * SPIFFE ID, or a refusal that names the pid and why. A pure function; the table test is the spec.
 *
 * - A process the supervisor started (pid AND start time match) → `spiffe://<td>/node/<node>/<component>`
 *   (`<node>`: the component's own node when the mesh has several, else the mesh's).
 * - A process whose network namespace is a pod's → `spiffe://<td>/ns/<pod>/<what it runs>`: `nsc` or
 *   `nse` when its command line is `nsm nsc|nse`, else `workload`. The pod part is the boundary the
 *   caller cannot fake (its socket was created in that netns and it is in that netns now); the last part
 *   comes from argv, which the process writes itself, so it only describes the workload within its pod.
 * - Anything else is refused: a uid not allowed, a process in the host netns the supervisor did not start,
 *   a netns that is no pod, a process that moved netns after creating its socket, a socket shared by
 *   processes that would get different IDs.
 */

import type { Attestation, ProcessFacts } from './attest.js';

/** A process the mesh's supervisor started. */
export interface KnownComponent {
  readonly pid: number;
  readonly startTime: number;
  readonly name: string;
  /** The node it runs on when it is not `MeshKnowledge.node` (a mesh of several nodes on one host). */
  readonly node?: string;
}

export interface MeshKnowledge {
  readonly trustDomain: string;
  /** The node's name (hostname), the `<node>` of component IDs. */
  readonly node: string;
  readonly components: readonly KnownComponent[];
  /** Netns identity (`inode://<dev>/<ino>`) → pod name. */
  readonly pods: ReadonlyMap<string, string>;
  /** Uids a pod process may run as (components are known by pid and need no uid rule). Default: root only. */
  readonly podUids?: readonly number[];
}

export const DEFAULT_POD_UIDS: readonly number[] = Object.freeze([0]);

export type Decision =
  | { readonly ok: true; readonly spiffeId: string; readonly pid: number }
  | { readonly ok: false; readonly reason: string; readonly pid?: number };

const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/** True when `s` can be one segment of a SPIFFE ID path (SPIFFE-ID spec §2.2: no `.` / `..`, no empty). */
export function isPathSegment(s: string): boolean {
  return SEGMENT_RE.test(s) && s !== '.' && s !== '..';
}

const NSM_PROGRAMS = new Set(['nsm', 'main.js']);
const POD_PROGRAMS = new Set(['nsc', 'nse']);
const baseName = (p: string) => p.slice(p.lastIndexOf('/') + 1);

/** What a pod process runs, from its argv: `nsc`/`nse` for `[node] …/nsm nsc|nse …`, else `workload`. */
export function workloadName(cmdline: readonly string[]): string {
  let i = 0;
  if (cmdline.length > 1 && /^node(js)?(\d+(\.\d+)*)?$/.test(baseName(cmdline[0]))) i = 1;
  const program = cmdline[i] === undefined ? '' : baseName(cmdline[i]);
  const sub = cmdline[i + 1];
  return NSM_PROGRAMS.has(program) && sub !== undefined && POD_PROGRAMS.has(sub) ? sub : 'workload';
}

function refuse(pid: number | undefined, reason: string): Decision {
  return { ok: false, pid, reason: pid === undefined ? reason : `pid ${pid}: ${reason}` };
}

function spiffeId(mesh: MeshKnowledge, segments: readonly string[], pid: number): Decision {
  const bad = segments.find((s) => !isPathSegment(s));
  if (bad !== undefined) return refuse(pid, `${JSON.stringify(bad)} cannot be a SPIFFE ID path segment`);
  return { ok: true, pid, spiffeId: `spiffe://${mesh.trustDomain}/${segments.join('/')}` };
}

/** The decision for one process holding the caller's socket, created in `socketNetns`. */
export function identityOfProcess(p: ProcessFacts, socketNetns: string, mesh: MeshKnowledge): Decision {
  const component = mesh.components.find((c) => c.pid === p.pid && c.startTime === p.startTime);
  if (component) return spiffeId(mesh, ['node', component.node ?? mesh.node, component.name], p.pid);
  if (mesh.components.some((c) => c.pid === p.pid)) return refuse(p.pid, 'a recycled pid of a mesh component (start time differs)');
  const pod = mesh.pods.get(socketNetns);
  if (pod === undefined) return refuse(p.pid, `not started by the mesh, and its netns ${socketNetns} is no pod of the mesh (exe ${p.exe})`);
  if (p.netns !== socketNetns) return refuse(p.pid, `created its socket in pod ${pod} (${socketNetns}) but is in netns ${p.netns} now`);
  const uids = mesh.podUids ?? DEFAULT_POD_UIDS;
  if (!uids.includes(p.uid)) return refuse(p.pid, `uid ${p.uid} in pod ${pod} is not allowed (allowed: ${uids.join(', ')})`);
  return spiffeId(mesh, ['ns', pod, workloadName(p.cmdline)], p.pid);
}

/** One SPIFFE ID for the caller, or a refusal: every holder of its socket must get the same ID. */
export function identityFor(att: Attestation, mesh: MeshKnowledge): Decision {
  if (att.holders.length === 0) return refuse(undefined, `no process holds socket ${att.peerInode}`);
  const decisions = att.holders.map((h) => identityOfProcess(h, att.socketNetns, mesh));
  const refused = decisions.find((d) => !d.ok);
  if (refused) return refused;
  const ids = new Set(decisions.map((d) => (d.ok ? d.spiffeId : '')));
  if (ids.size > 1) {
    const pids = att.holders.map((h) => h.pid).join(', ');
    return refuse(att.holders[0].pid, `its socket is shared by pids ${pids} with different identities (${[...ids].join(', ')})`);
  }
  return decisions[0];
}
