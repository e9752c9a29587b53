/**
 * `nsm status`: what runs in the local mesh, read from `mesh.json` (components, pods), the registry
 * (Find without watch), nsmgr (MonitorConnections initial state) and the pod status files. Every
 * source is optional: a source that does not answer adds an entry to `errors` instead of failing.
 */
import { State, type Connection } from '../api/gen/connection.js';
import { errorMessage } from '../core/errors.js';
import { checkHealth, findEndpoints, findServices, initialConnections, type HealthResult } from './grpc.js';
import { runningSupervisor } from './mesh.js';
import { netnsExists } from './netns.js';
import { COMPONENTS, type RunPaths } from './paths.js';
import { isRunning } from './proc.js';
import { readStatusFile } from './pods.js';
import { readState } from './state.js';

export interface ComponentStatus {
  name: string;
  state: 'up' | 'not serving' | 'restarting' | 'down';
  health: HealthResult;
  pid: number | null;
  restarts: number;
  uptimeS: number | null;
  lastExit?: { code: number | null; signal: string | null; at: string };
}

export interface ConnectionStatus {
  id: string;
  service: string;
  state: string;
  path: string;
  endpoint: string;
  nscAddresses: string[];
  nseAddresses: string[];
}

export interface PodStatus {
  pod: string;
  netns: string;
  netnsExists: boolean;
  component: string;
  name: string;
  pid: number;
  running: boolean;
  uptimeS: number | null;
  lastHeal: unknown;
  status: unknown;
}

export interface MeshStatus {
  runDir: string;
  up: boolean;
  supervisor: { pid: number; uptimeS: number } | null;
  components: ComponentStatus[];
  services: Array<{ name: string; payload: string }>;
  endpoints: Array<{ name: string; services: string[]; url: string; expires: string | null }>;
  connections: ConnectionStatus[];
  pods: PodStatus[];
  errors: string[];
}

const uptime = (started: string | undefined) => (started ? Math.max(0, Math.round((Date.now() - Date.parse(started)) / 1000)) : null);

export function connectionStatus(c: Connection): ConnectionStatus {
  const ip = c.context?.ipContext;
  return {
    id: c.id,
    service: c.networkService,
    state: State[c.state] ?? String(c.state),
    path: (c.path?.pathSegments ?? []).map((s) => s.name).join(' -> '),
    endpoint: c.networkServiceEndpointName,
    nscAddresses: ip?.srcIpAddrs ?? [],
    nseAddresses: ip?.dstIpAddrs ?? [],
  };
}

export async function collectStatus(paths: RunPaths): Promise<MeshStatus> {
  const state = readState(paths);
  const sup = runningSupervisor(state);
  const out: MeshStatus = {
    runDir: paths.dir,
    up: !!sup,
    supervisor: sup ? { pid: sup.pid, uptimeS: uptime(sup.started) ?? 0 } : null,
    components: [],
    services: [],
    endpoints: [],
    connections: [],
    pods: [],
    errors: [],
  };
  if (!state) return out;
  for (const name of COMPONENTS) {
    const rec = state.components[name];
    const running = isRunning(rec);
    const health = running ? await checkHealth(paths.sockets[name], 1000) : 'UNREACHABLE';
    out.components.push({
      name,
      state: running ? (health === 'SERVING' ? 'up' : 'not serving') : rec?.phase === 'backoff' && sup ? 'restarting' : 'down',
      health,
      pid: running ? rec!.pid : null,
      restarts: rec?.restarts ?? 0,
      uptimeS: running ? uptime(rec!.started) : null,
      ...(rec?.lastExit ? { lastExit: rec.lastExit } : {}),
    });
  }
  if (sup) {
    await Promise.all([
      findServices(paths.sockets.registry)
        .then((ns) => void (out.services = ns.map((s) => ({ name: s.name, payload: s.payload }))))
        .catch((err: unknown) => void out.errors.push(`registry services: ${errorMessage(err)}`)),
      findEndpoints(paths.sockets.registry)
        .then(
          (es) =>
            void (out.endpoints = es.map((e) => ({
              name: e.name,
              services: e.networkServiceNames,
              url: e.url,
              expires: e.expirationTime ? e.expirationTime.toISOString() : null,
            }))),
        )
        .catch((err: unknown) => void out.errors.push(`registry endpoints: ${errorMessage(err)}`)),
      initialConnections(paths.sockets.nsmgr)
        .then((cs) => void (out.connections = cs.map(connectionStatus)))
        .catch((err: unknown) => void out.errors.push(`nsmgr connections: ${errorMessage(err)}`)),
    ]);
  }
  for (const [pod, p] of Object.entries(state.pods)) {
    for (const proc of p.processes) {
      const running = isRunning(proc);
      const status = readStatusFile(proc.statusFile) ?? null;
      const lastHeal = lastHealOf(status);
      out.pods.push({
        pod,
        netns: p.netns,
        netnsExists: netnsExists(p.netns),
        component: proc.component,
        name: proc.name,
        pid: proc.pid,
        running,
        uptimeS: running ? uptime(proc.started) : null,
        lastHeal,
        status,
      });
    }
  }
  return out;
}

export function formatUptime(s: number | null): string {
  if (s === null) return '-';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `lastHeal` of an NSC status file: top level or under `heal` (the nsc writes `{ heal: { lastHeal } }`). */
export function lastHealOf(status: unknown): unknown {
  if (!status || typeof status !== 'object') return null;
  const s = status as { lastHeal?: unknown; heal?: { lastHeal?: unknown } };
  return s.lastHeal ?? s.heal?.lastHeal ?? null;
}

function short(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  const o = v as Record<string, unknown>;
  const at = typeof o.at === 'number' ? new Date(o.at).toISOString() : typeof o.at === 'string' ? o.at : undefined;
  const parts = ['connId', 'cause', 'action', 'ms', 'attempts'].filter((k) => o[k] !== undefined).map((k) => `${k}=${String(o[k])}`);
  if (parts.length === 0 && !at) return JSON.stringify(v);
  return [at, ...parts].filter(Boolean).join(' ');
}

export function formatStatus(s: MeshStatus): string {
  const out: string[] = [];
  if (!s.up) {
    out.push(`mesh is not up (run dir ${s.runDir})`);
    const left = [...s.components.filter((c) => c.pid !== null).map((c) => `${c.name} pid ${c.pid}`), ...s.pods.filter((p) => p.running).map((p) => `${p.pod}/${p.component} pid ${p.pid}`)];
    if (left.length > 0) out.push(`left over: ${left.join(', ')}; clean up with: nsm down`);
    return out.join('\n');
  }
  out.push(`mesh is up (run dir ${s.runDir}, supervisor pid ${s.supervisor!.pid}, up ${formatUptime(s.supervisor!.uptimeS)})`, '');
  out.push(
    table(
      ['COMPONENT', 'STATE', 'PID', 'RESTARTS', 'UPTIME', 'LAST EXIT'],
      s.components.map((c) => [
        c.name,
        c.state,
        c.pid === null ? '-' : String(c.pid),
        String(c.restarts),
        formatUptime(c.uptimeS),
        c.lastExit ? `${c.lastExit.signal ?? `code ${c.lastExit.code}`} at ${c.lastExit.at}` : '-',
      ]),
    ),
  );
  out.push('', s.services.length === 0 ? 'SERVICES: none' : table(['SERVICE', 'PAYLOAD'], s.services.map((x) => [x.name, x.payload || '-'])));
  out.push(
    '',
    s.endpoints.length === 0
      ? 'ENDPOINTS: none'
      : table(['ENDPOINT', 'SERVICES', 'URL', 'EXPIRES'], s.endpoints.map((e) => [e.name, e.services.join(',') || '-', e.url || '-', e.expires ?? '-'])),
  );
  out.push(
    '',
    s.connections.length === 0
      ? 'CONNECTIONS: none'
      : table(
          ['CONNECTION', 'SERVICE', 'STATE', 'NSC', 'NSE', 'PATH'],
          s.connections.map((c) => [c.id, c.service, c.state, c.nscAddresses.join(',') || '-', c.nseAddresses.join(',') || '-', c.path || '-']),
        ),
  );
  out.push(
    '',
    s.pods.length === 0
      ? 'PODS: none'
      : table(
          ['POD', 'COMPONENT', 'NAME', 'PID', 'STATE', 'UPTIME', 'LAST HEAL'],
          s.pods.map((p) => [p.pod, p.component, p.name, String(p.pid), p.running ? 'running' : 'exited', formatUptime(p.uptimeS), short(p.lastHeal)]),
        ),
  );
  if (s.errors.length > 0) out.push('', ...s.errors.map((e) => `warning: ${e}`));
  return out.join('\n');
}
