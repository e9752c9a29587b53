/**
 * The local-mesh supervisor (`nsm supervise`, started detached by `nsm up`): runs registry, nsmgr and
 * forwarder as child processes of the `nsm` program and restarts one that dies, as a kubelet does
 * (immediately the first time, then 0.2 s doubling to 5 s; the count resets after 30 s up). A restart
 * keeps the env computed at start (same NSM_NAME, same sockets). Each start and exit is recorded in
 * `mesh.json` (pid + start time, restarts, last exit) and logged; component output is appended to
 * `logs/<name>.log`. `stop()` stops the components in reverse order (SIGTERM, SIGKILL after a grace)
 * and removes sockets they left.
 *
 * A mesh of nodes (`deps.topology`, local/layout.ts): the registry, and each node's nsmgr and forwarder,
 * start inside the node's netns (`ip netns exec <netns> node <nsm> <component>`: the pid stays the
 * component's), in three groups — registry, then every nsmgr, then every forwarder — each after the
 * previous group serves.
 *
 * Identity: a secure mesh (the default) runs the mesh's own SPIFFE Workload API in this process, at
 * `<run dir>/agent.sock`, with the CA of the run dir (local/identity.ts). It knows every component's pid
 * and start time right after spawn, so the identity policy gives exactly those processes
 * `spiffe://nsm.local/node/<node>/<component>` (`<node>` = the hostname, or `node-<i>` in a mesh of nodes)
 * and a pod's processes `…/ns/<pod>/<what>`; the nodes' and the underlay's netns are never pods. Components get
 * `SPIFFE_ENDPOINT_SOCKET` for it; an insecure mesh (`nsm up --insecure`) runs no Workload API and gives
 * them `NSM_INSECURE=true`. The supervisor's own health checks use an SVID it issues itself
 * (`node/<node>/supervisor`). The Workload API stops after the components, and its socket is removed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { backoff } from '../core/delay.js';
import { closeSync, lstatSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import type { Logger } from '../core/log.js';
import { socketAlive } from '../core/transport.js';
import { sleep } from '../core/signals.js';
import type { GrpcServer } from '../core/transport.js';
import type { MeshKnowledge } from '../security/identity-policy.js';
import { namedNetnsPods } from '../security/named-netns.js';
import { INSECURE, mtls, type TransportSecurity } from '../security/tls.js';
import { WorkloadApi, type WorkloadApiOptions } from '../security/workload-server.js';
import { waitServing } from './grpc.js';
import { CaSource, loadOrCreateCa, nodeSpiffeId } from './identity.js';
import { meshLayout, type ComponentSlot } from './layout.js';
import { topologyNetns, type Topology } from './nodes.js';
import { COMPONENTS, EMBEDDED_TRUST_DOMAIN, type ComponentName, type MeshSecurity, type RunPaths } from './paths.js';
import { isRunning, recordFor, type ProcRecord } from './proc.js';
import { updateState, type ComponentRecord } from './state.js';

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 200, maxMs: 5000, resetAfterMs: 30_000 });
export const DEFAULT_STOP_GRACE_MS = 5000;
export const DEFAULT_START_WAIT_MS = 10_000;

/** Delay before the next start after `failures` earlier consecutive crashes: 0, initial, 2×initial, … ≤ max. */
export function restartDelay(failures: number, b: BackoffOptions = DEFAULT_BACKOFF): number {
  return failures <= 0 ? 0 : backoff(failures, b.initialMs, b.maxMs);
}

/** SVID lifetime of the supervisor's own health-check identity. */
export const SUPERVISOR_SVID_TTL_MS = 3600_000;

/**
 * The env a component inherits: the supervisor's, minus NSM_* (except NSM_LOG_LEVEL) and
 * SPIFFE_ENDPOINT_SOCKET, so a stray shell var cannot redirect it.
 */
export function baseEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if ((k.startsWith('NSM_') && k !== 'NSM_LOG_LEVEL') || k === 'SPIFFE_ENDPOINT_SOCKET') continue;
    out[k] = v;
  }
  return out;
}

export interface SupervisorDeps {
  readonly paths: RunPaths;
  readonly hostname: string;
  /** Script of the `nsm` program (components run as `node <entry> <name>`). */
  readonly entry: string;
  readonly log: Logger;
  /** `mtls`: run the Workload API and give components SPIFFE_ENDPOINT_SOCKET; `insecure`: NSM_INSECURE=true. */
  readonly security: MeshSecurity;
  /** A mesh of nodes (created by `nsm up --nodes`): each component runs in its node's netns (local/layout.ts). */
  readonly topology?: Topology;
}

export interface SupervisorOptions {
  readonly workloadApi?: WorkloadApiOptions;
  readonly backoff?: BackoffOptions;
  readonly stopGraceMs?: number;
  readonly startWaitMs?: number;
  readonly components?: readonly ComponentName[];
}

interface Slot extends ComponentSlot {
  child?: ChildProcess;
  rec?: ProcRecord;
  exited?: Promise<void>;
  startedAt: number;
  restarts: number;
  failures: number;
  timer?: NodeJS.Timeout;
}

export class Supervisor {
  readonly #deps: SupervisorDeps;
  readonly #opts: Required<SupervisorOptions>;
  readonly #slots: Slot[];
  #stopping = false;
  #api?: GrpcServer;
  #probeSource?: CaSource;
  #probe: TransportSecurity = INSECURE;

  constructor(deps: SupervisorDeps, options: SupervisorOptions = {}) {
    this.#deps = deps;
    this.#opts = Object.freeze({
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      stopGraceMs: options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS,
      startWaitMs: options.startWaitMs ?? DEFAULT_START_WAIT_MS,
      components: options.components ?? COMPONENTS,
      workloadApi: options.workloadApi ?? {},
    });
    const base = baseEnv();
    this.#slots = meshLayout(deps.paths, deps.hostname, deps.security, deps.topology)
      .filter((slot) => this.#opts.components.includes(slot.name))
      .map((slot) => ({ ...slot, env: Object.freeze({ ...base, ...slot.env }), startedAt: 0, restarts: 0, failures: 0 }));
  }

  /** Records the supervisor, starts the Workload API (secure mesh) and the components group by group (registry, nsmgrs, forwarders), each group after the previous one serves. */
  async start(): Promise<void> {
    const { paths, hostname, security } = this.#deps;
    mkdirSync(paths.logs, { recursive: true });
    mkdirSync(paths.pods, { recursive: true });
    for (const n of this.#deps.topology?.nodes ?? []) mkdirSync(paths.nodeSockets(n.name).dir, { recursive: true });
    if (security === 'mtls') await this.#startWorkloadApi();
    else this.#deps.log.warn('NSM_INSECURE=true for every component: plaintext gRPC, unverified tokens (nsm up --insecure)');
    const agentSocket = security === 'mtls' ? { agentSocket: paths.agentSocket } : {};
    updateState(paths, hostname, (s) => {
      const { agentSocket: _old, ...rest } = s;
      return { ...rest, hostname, security, ...agentSocket, supervisor: recordFor(process.pid), components: {} };
    });
    for (const phase of [...new Set(this.#slots.map((s) => s.phase))]) {
      if (this.#stopping) return;
      const group = this.#slots.filter((s) => s.phase === phase);
      for (const slot of group) this.#spawn(slot);
      await Promise.all(
        group.map(async (slot) => {
          const ok = await waitServing(slot.socket, this.#probe, this.#opts.startWaitMs, () => this.#stopping);
          if (!ok && !this.#stopping) this.#deps.log.warn({ component: slot.id }, 'component not serving yet; starting the next ones anyway');
        }),
      );
    }
  }

  /** The CA of the run dir (created on the first start), the Workload API on agent.sock, and the supervisor's own SVID. */
  async #startWorkloadApi(): Promise<void> {
    const { paths, hostname, log } = this.#deps;
    const { ca, created } = loadOrCreateCa(paths);
    log.info({ caDir: paths.ca.dir, trustDomain: ca.trustDomain, created }, created ? 'created the mesh CA' : 'using the mesh CA of the run dir');
    const api = new WorkloadApi({ issuer: ca, bundles: () => ca.bundles, knowledge: () => this.#knowledge(), log }, this.#opts.workloadApi);
    this.#api = await api.listen(paths.agentSocket);
    this.#probeSource = new CaSource(ca, nodeSpiffeId(hostname, 'supervisor'), { ttlMs: SUPERVISOR_SVID_TTL_MS });
    this.#probe = mtls(this.#probeSource, { log });
    log.info({ socket: paths.agentSocket }, 'SPIFFE Workload API serving (SPIFFE_ENDPOINT_SOCKET of components and pods)');
  }

  /** What the identity policy needs, read at every attestation: the components running now, the named netns (pods). */
  async #knowledge(): Promise<MeshKnowledge> {
    const components = this.#slots.filter((s) => s.child && s.rec).map((s) => ({ pid: s.rec!.pid, startTime: s.rec!.startTime, name: s.name, node: s.node }));
    const pods = await namedNetnsPods();
    // The nodes' and the underlay's netns are named too, but they are no pods: a process there is a component (known by pid) or nobody.
    const infra = new Set(this.#deps.topology ? topologyNetns(this.#deps.topology) : []);
    for (const [id, name] of pods) if (infra.has(name)) pods.delete(id);
    return { trustDomain: EMBEDDED_TRUST_DOMAIN, node: this.#deps.hostname, components, pods };
  }

  #spawn(slot: Slot): void {
    const { entry, log } = this.#deps;
    const fd = openSync(slot.log, 'a');
    try {
      writeSync(fd, `--- nsm supervise: starting ${slot.id}${slot.netns ? ` in netns ${slot.netns}` : ''} (restart ${slot.restarts}) at ${new Date().toISOString()} ---\n`);
      // `ip netns exec` enters the node's netns and execs node in place: the pid (and its start time) stay the component's.
      const [cmd, args] = slot.netns ? ['ip', ['netns', 'exec', slot.netns, process.execPath, entry, slot.name]] : [process.execPath, [entry, slot.name]];
      const child = spawn(cmd, args, { env: slot.env, stdio: ['ignore', fd, fd] });
      slot.child = child;
      slot.startedAt = Date.now();
      slot.exited = new Promise<void>((resolve) => {
        let done = false;
        const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
          if (done) return;
          done = true;
          resolve();
          this.#onExit(slot, child, code, signal);
        };
        child.once('exit', onExit);
        child.once('error', (err) => {
          log.error({ component: slot.id, err: err.message }, 'cannot start component');
          onExit(null, null);
        });
      });
      if (child.pid !== undefined) {
        const rec = recordFor(child.pid);
        slot.rec = rec;
        this.#record(slot, { ...rec, phase: 'running' });
        log.info({ component: slot.id, childPid: child.pid, restarts: slot.restarts }, 'component started');
      }
    } finally {
      closeSync(fd);
    }
  }

  #onExit(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    slot.child = undefined;
    const lastExit = { code, signal, at: new Date().toISOString() };
    if (this.#stopping) return;
    const { backoff } = this.#opts;
    if (Date.now() - slot.startedAt >= backoff.resetAfterMs) slot.failures = 0;
    const delay = restartDelay(slot.failures, backoff);
    slot.failures++;
    slot.restarts++;
    this.#deps.log.warn({ component: slot.id, code, signal, restarts: slot.restarts, delayMs: delay }, 'component exited; restarting');
    this.#record(slot, { pid: slot.rec?.pid ?? 0, startTime: slot.rec?.startTime ?? -1, started: slot.rec?.started ?? lastExit.at, phase: 'backoff', lastExit });
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (!this.#stopping) this.#spawn(slot);
    }, delay);
  }

  #record(slot: Slot, r: Pick<ComponentRecord, 'pid' | 'startTime' | 'started' | 'phase'> & { lastExit?: ComponentRecord['lastExit'] }): void {
    const { paths, hostname } = this.#deps;
    try {
      updateState(paths, hostname, (s) => {
        const prev = s.components[slot.id];
        const rec: ComponentRecord = {
          name: slot.name,
          ...(slot.netns ? { node: slot.node } : {}),
          pid: r.pid,
          startTime: r.startTime,
          started: r.started,
          restarts: slot.restarts,
          socket: slot.socket,
          log: slot.log,
          phase: r.phase,
          ...(r.lastExit ?? prev?.lastExit ? { lastExit: r.lastExit ?? prev?.lastExit } : {}),
        };
        return { ...s, components: { ...s.components, [slot.id]: rec } };
      });
    } catch (err) {
      this.#deps.log.error({ component: slot.id, err: (err as Error).message }, 'cannot record state');
    }
  }

  /** Stops the components in reverse start order and removes sockets they left. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const { paths, hostname, log } = this.#deps;
    for (const slot of this.#slots) if (slot.timer) clearTimeout(slot.timer);
    for (const slot of [...this.#slots].reverse()) {
      const child = slot.child;
      if (!child || !slot.rec || !isRunning(slot.rec)) continue;
      log.info({ component: slot.id, childPid: child.pid }, 'stopping component');
      child.kill('SIGTERM');
      const gone = await Promise.race([slot.exited!.then(() => true), sleep(this.#opts.stopGraceMs).then(() => false)]);
      if (!gone) {
        log.warn({ component: slot.id, childPid: child.pid }, 'component did not stop in time; SIGKILL');
        child.kill('SIGKILL');
        await Promise.race([slot.exited, sleep(2000)]);
      }
    }
    for (const slot of this.#slots) await removeStaleSocket(slot.socket);
    if (this.#api) {
      await this.#api.stop({ force: true });
      await removeStaleSocket(paths.agentSocket);
    }
    this.#probeSource?.close();
    updateState(paths, hostname, (s) => {
      const { supervisor: _sup, ...rest } = s;
      return { ...rest, components: {} };
    });
    log.info('all components stopped');
  }
}

/** Removes a socket file nobody listens on. */
export async function removeStaleSocket(path: string): Promise<void> {
  try {
    if (!lstatSync(path).isSocket()) return;
  } catch {
    return;
  }
  if (await socketAlive(path)) return;
  try {
    unlinkSync(path);
  } catch {
    /* gone */
  }
}
