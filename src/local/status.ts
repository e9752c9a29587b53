/**
 * `nsm status`: what runs in the local mesh, read from `mesh.json` (components, pods, security mode), the
 * registry (Find without watch), nsmgr (MonitorConnections initial state) and the pod status files. Every
 * source is optional: a source that does not answer adds an entry to `errors` instead of failing.
 *
 * Identity: the calls use the mesh's mode (mTLS with a CLI SVID from the run dir's CA, or plaintext for
 * an insecure mesh). Each component's SPIFFE ID and SVID expiry come from the mTLS handshake of its health
 * check (what it really presents, not what it was meant to get); `security` per component says how its
 * health answered. Each connection's path segments show `sub`, `aud` and `exp` decoded (not verified)
 * from their tokens.
 */
import { State, type Connection, type PathSegment } from '../api/gen/connection.js';
import { errorMessage } from '../core/errors.js';
import { decodeToken } from '../security/token.js';
import { INSECURE } from '../security/tls.js';
import { certInfo } from '../security/x509.js';
import { findEndpoints, findServices, initialConnections, probeHealth, type HealthResult } from './grpc.js';
import { localMeshSecurity, meshSecurityOf, type CommandSecurity } from './identity.js';
import { runningSupervisor } from './mesh.js';
import { netnsExists } from './netns.js';
import { COMPONENTS, EMBEDDED_TRUST_DOMAIN, type ComponentName, type MeshSecurity, type RunPaths } from './paths.js';
import { isRunning } from './proc.js';
import { readStatusFile } from './pods.js';
import { readState, type MeshState } from './state.js';

export interface ComponentStatus {
  name: string;
  /** `unchecked`: its process runs, but this status had no identity to ask it with (see `errors`). */
  state: 'up' | 'not serving' | 'unchecked' | 'restarting' | 'down';
  health: HealthResult;
  pid: number | null;
  restarts: number;
  uptimeS: number | null;
  lastExit?: { code: number | null; signal: string | null; at: string };
  /** How its health check answered: over mTLS, over plaintext, or not at all (null). */
  security: MeshSecurity | null;
  /** SPIFFE ID of the certificate it presented in the health check's handshake. */
  spiffeId: string | null;
  /** NotAfter of that certificate (ISO). */
  svidExpires: string | null;
  /** Why its health check failed. */
  error?: string;
}

/** One path segment, with the claims of its token decoded (not verified). */
export interface SegmentStatus {
  index: number;
  name: string;
  id: string;
  sub: string | null;
  aud: string[];
  /** `exp` of the token (ISO), or null. */
  tokenExpires: string | null;
  /** Why the token did not decode (e.g. empty). */
  tokenError?: string;
}

export interface ConnectionStatus {
  id: string;
  service: string;
  state: string;
  path: string;
  endpoint: string;
  nscAddresses: string[];
  nseAddresses: string[];
  segments: SegmentStatus[];
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
  /** `mtls` (the default) or `insecure` (`nsm up --insecure`); null when no mesh state exists. */
  security: MeshSecurity | null;
  /** The trust domain of a secure mesh and its Workload API socket. */
  trustDomain: string | null;
  workloadApi: string | null;
  /** Who this status call was made as (`spiffe://nsm.local/node/<node>/cli`), or how. */
  caller: string | null;
  components: ComponentStatus[];
  services: Array<{ name: string; payload: string }>;
  endpoints: Array<{ name: string; services: string[]; url: string; expires: string | null }>;
  connections: ConnectionStatus[];
  pods: PodStatus[];
  errors: string[];
}

/** Bound of each component's health check in `nsm status` (a loaded 2-core host can take a second for a TLS handshake). */
export const STATUS_PROBE_TIMEOUT_MS = 3000;

const uptime = (started: string | undefined) => (started ? Math.max(0, Math.round((Date.now() - Date.parse(started)) / 1000)) : null);

const asStrings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : typeof v === 'string' ? [v] : []);

/** A path segment with its token's `sub`, `aud` and `exp` decoded (no verification: status only shows). */
export function segmentStatus(seg: PathSegment, index: number): SegmentStatus {
  const base = { index, name: seg.name, id: seg.id };
  try {
    const { payload } = decodeToken(seg.token);
    const exp = typeof payload.exp === 'number' && Number.isFinite(payload.exp) ? new Date(payload.exp * 1000).toISOString() : null;
    return { ...base, sub: typeof payload.sub === 'string' ? payload.sub : null, aud: asStrings(payload.aud), tokenExpires: exp };
  } catch (err) {
    return { ...base, sub: null, aud: [], tokenExpires: null, tokenError: errorMessage(err) };
  }
}

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
    segments: (c.path?.pathSegments ?? []).map(segmentStatus),
  };
}

export async function collectStatus(paths: RunPaths, node: string): Promise<MeshStatus> {
  const state = readState(paths);
  const sup = runningSupervisor(state);
  const security = state ? meshSecurityOf(state) : null;
  const out: MeshStatus = {
    runDir: paths.dir,
    up: !!sup,
    supervisor: sup ? { pid: sup.pid, uptimeS: uptime(sup.started) ?? 0 } : null,
    security,
    trustDomain: security === 'mtls' ? EMBEDDED_TRUST_DOMAIN : null,
    workloadApi: security === 'mtls' ? `unix://${state?.agentSocket ?? paths.agentSocket}` : null,
    caller: null,
    components: [],
    services: [],
    endpoints: [],
    connections: [],
    pods: [],
    errors: [],
  };
  if (!state) return out;
  let cli: CommandSecurity | undefined;
  try {
    cli = sup ? localMeshSecurity(paths, state, node) : undefined;
    out.caller = cli?.describe ?? null;
  } catch (err) {
    out.errors.push(`no identity to call the mesh with: ${errorMessage(err)}`);
  }
  try {
    for (const name of COMPONENTS) out.components.push(await componentStatus(paths, state, name, sup !== undefined, cli));
    if (sup && cli) await askComponents(paths, cli, out);
  } finally {
    cli?.close();
  }
  out.pods = podStatuses(state);
  return out;
}

async function componentStatus(paths: RunPaths, state: MeshState, name: ComponentName, supervised: boolean, cli: CommandSecurity | undefined): Promise<ComponentStatus> {
  const rec = state.components[name];
  const running = isRunning(rec);
  const probe = running && cli ? await probeHealth(paths.sockets[name], cli.security, STATUS_PROBE_TIMEOUT_MS) : { health: 'UNREACHABLE' as const };
  const health = probe.health;
  const answered = health !== 'UNREACHABLE';
  return {
    name,
    state: running ? (!cli ? 'unchecked' : health === 'SERVING' ? 'up' : 'not serving') : rec?.phase === 'backoff' && supervised ? 'restarting' : 'down',
    health,
    pid: running ? rec!.pid : null,
    restarts: rec?.restarts ?? 0,
    uptimeS: running ? uptime(rec!.started) : null,
    ...(rec?.lastExit ? { lastExit: rec.lastExit } : {}),
    security: !answered ? null : probe.identity ? 'mtls' : cli?.security === INSECURE ? 'insecure' : null,
    spiffeId: probe.identity?.spiffeId ?? null,
    svidExpires: probe.identity ? certInfo(probe.identity.certificate).notAfter.toISOString() : null,
    ...(probe.error ? { error: probe.error } : {}),
  };
}

/** Registry contents and nsmgr's connections; a source that fails adds an error. */
async function askComponents(paths: RunPaths, cli: CommandSecurity, out: MeshStatus): Promise<void> {
  const sec = cli.security;
  await Promise.all([
    findServices(paths.sockets.registry, sec)
      .then((ns) => void (out.services = ns.map((s) => ({ name: s.name, payload: s.payload }))))
      .catch((err: unknown) => void out.errors.push(`registry services: ${errorMessage(err)}`)),
    findEndpoints(paths.sockets.registry, sec)
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
    initialConnections(paths.sockets.nsmgr, sec)
      .then((cs) => void (out.connections = cs.map(connectionStatus)))
      .catch((err: unknown) => void out.errors.push(`nsmgr connections: ${errorMessage(err)}`)),
  ]);
}

function podStatuses(state: MeshState): PodStatus[] {
  const out: PodStatus[] = [];
  for (const [pod, p] of Object.entries(state.pods)) {
    for (const proc of p.processes) {
      const running = isRunning(proc);
      const status = readStatusFile(proc.statusFile) ?? null;
      const lastHeal = lastHealOf(status);
      out.push({
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

function securityLine(s: MeshStatus): string {
  if (s.security === 'insecure') return 'security: INSECURE (nsm up --insecure): plaintext gRPC, unverified tokens';
  return `security: mtls (trust domain ${s.trustDomain}, Workload API ${s.workloadApi}; this status as ${s.caller ?? '-'})`;
}

function segmentTable(segs: readonly SegmentStatus[]): string {
  return table(
    ['#', 'NAME', 'SUB', 'AUD', 'TOKEN EXPIRES'],
    segs.map((g) => [String(g.index), g.name, g.sub ?? (g.tokenError ? `(${g.tokenError})` : '-'), g.aud.join(',') || '-', g.tokenExpires ?? '-']),
  );
}

export function formatStatus(s: MeshStatus): string {
  const out: string[] = [];
  if (!s.up) {
    out.push(`mesh is not up (run dir ${s.runDir})`);
    const left = [...s.components.filter((c) => c.pid !== null).map((c) => `${c.name} pid ${c.pid}`), ...s.pods.filter((p) => p.running).map((p) => `${p.pod}/${p.component} pid ${p.pid}`)];
    if (left.length > 0) out.push(`left over: ${left.join(', ')}; clean up with: nsm down`);
    return out.join('\n');
  }
  out.push(`mesh is up (run dir ${s.runDir}, supervisor pid ${s.supervisor!.pid}, up ${formatUptime(s.supervisor!.uptimeS)})`);
  out.push(securityLine(s), '');
  out.push(
    table(
      ['COMPONENT', 'STATE', 'PID', 'RESTARTS', 'UPTIME', 'SECURITY', 'SPIFFE ID', 'SVID EXPIRES', 'LAST EXIT'],
      s.components.map((c) => [
        c.name,
        c.state,
        c.pid === null ? '-' : String(c.pid),
        String(c.restarts),
        formatUptime(c.uptimeS),
        c.security ?? '-',
        c.spiffeId ?? '-',
        c.svidExpires ?? '-',
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
  for (const c of s.connections) out.push('', `PATH of ${c.id}:`, segmentTable(c.segments));
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
