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
 *
 * Nodes: for a mesh of nodes (`nsm up --nodes N`) `nodes` lists each node (netns, underlay address, nsmgr
 * and forwarder state), `underlay` the bridge's netns and network, each component and pod says its node,
 * connections are gathered from every node's nsmgr (one entry per connection: the one with the longest
 * path, `nodes` = the nsmgrs that report it), and each path segment shows the mechanism of the hop that
 * reached it (segment 0: the client's own) where a connection in the status has that segment's index — the
 * nsmgrs' views and the NSC's status file.
 */
import { Connection, State, type PathSegment } from '../api/gen/connection.js';
import { errorMessage } from '../core/errors.js';
import { decodeToken } from '../security/token.js';
import { INSECURE } from '../security/tls.js';
import { certInfo } from '../security/x509.js';
import { findEndpoints, findServices, initialConnections, probeHealth, type HealthResult } from './grpc.js';
import { localMeshSecurity, meshSecurityOf, type CommandSecurity } from './identity.js';
import { runningSupervisor } from './mesh.js';
import { netnsExists } from './netns.js';
import { layoutOf, nsmgrTcpUrl, type ComponentSlot } from './layout.js';
import { EMBEDDED_TRUST_DOMAIN, type MeshSecurity, type RunPaths } from './paths.js';
import { isRunning } from './proc.js';
import { readStatusFile } from './pods.js';
import { readState, type MeshState } from './state.js';

export interface ComponentStatus {
  /** `registry`, `nsmgr`, `forwarder`, or `<node>/nsmgr`, `<node>/forwarder` in a mesh of nodes. */
  id: string;
  name: string;
  /** Its node in a mesh of nodes; null in the one-node layout. */
  node: string | null;
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
  /** Mechanism type of the hop that reached this segment (segment 0: the client's own), where the status has it. */
  mechanism: string | null;
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
  /** The nodes whose nsmgr reports the connection (a mesh of nodes); empty in the one-node layout. */
  nodes: string[];
}

export interface NodeStatus {
  name: string;
  netns: string;
  netnsExists: boolean;
  /** Underlay address (its forwarder's NSM_TUNNEL_IP). */
  address: string;
  /** nsmgr's public (tcp) URL. */
  nsmgrUrl: string;
  nsmgr: ComponentStatus['state'];
  forwarder: ComponentStatus['state'];
}

export interface PodStatus {
  pod: string;
  /** The node whose nsmgr it uses; null in the one-node layout. */
  node: string | null;
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
  /** The nodes of a mesh of nodes; empty in the one-node layout. */
  nodes: NodeStatus[];
  /** The underlay of a mesh of nodes. */
  underlay: { netns: string; netnsExists: boolean; bridge: string; cidr: string } | null;
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
export function segmentStatus(seg: PathSegment, index: number, mechanism: string | null = null): SegmentStatus {
  const base = { index, name: seg.name, id: seg.id, mechanism };
  try {
    const { payload } = decodeToken(seg.token);
    const exp = typeof payload.exp === 'number' && Number.isFinite(payload.exp) ? new Date(payload.exp * 1000).toISOString() : null;
    return { ...base, sub: typeof payload.sub === 'string' ? payload.sub : null, aud: asStrings(payload.aud), tokenExpires: exp };
  } catch (err) {
    return { ...base, sub: null, aud: [], tokenExpires: null, tokenError: errorMessage(err) };
  }
}

/** A connection as the status shows it; `mechanisms` maps a segment index to the mechanism of the hop that reached it. */
export function connectionStatus(c: Connection, mechanisms: ReadonlyMap<number, string> = new Map(), nodes: readonly string[] = []): ConnectionStatus {
  const ip = c.context?.ipContext;
  return {
    id: c.id,
    service: c.networkService,
    state: State[c.state] ?? String(c.state),
    path: (c.path?.pathSegments ?? []).map((s) => s.name).join(' -> '),
    endpoint: c.networkServiceEndpointName,
    nscAddresses: ip?.srcIpAddrs ?? [],
    nseAddresses: ip?.dstIpAddrs ?? [],
    segments: (c.path?.pathSegments ?? []).map((seg, i) => segmentStatus(seg, i, mechanisms.get(i) ?? null)),
    nodes: [...nodes],
  };
}

/** A connection seen by some source (a node's nsmgr, the NSC's status file). */
export interface SeenConnection {
  readonly connection: Connection;
  /** The node whose nsmgr reported it; undefined for other sources. */
  readonly node?: string;
}

/**
 * One entry per end-to-end connection, grouped by the id of its first path segment (the client's, the same
 * on every hop): the view with the longest path, the nsmgrs that report it, and per segment index the
 * mechanism of each view whose own index is that one.
 */
export function mergeConnections(seen: readonly SeenConnection[]): ConnectionStatus[] {
  const groups = new Map<string, SeenConnection[]>();
  for (const x of seen) {
    const key = x.connection.path?.pathSegments[0]?.id || x.connection.id;
    groups.set(key, [...(groups.get(key) ?? []), x]);
  }
  return [...groups.values()].map((views) => {
    const best = views.reduce((a, b) => ((b.connection.path?.pathSegments.length ?? 0) > (a.connection.path?.pathSegments.length ?? 0) ? b : a));
    const mechanisms = new Map<number, string>();
    for (const v of views) {
      const type = v.connection.mechanism?.type;
      const index = v.connection.path?.index ?? 0;
      if (type && !mechanisms.has(index)) mechanisms.set(index, type);
    }
    const nodes = [...new Set(views.map((v) => v.node).filter((n): n is string => n !== undefined))];
    return connectionStatus(best.connection, mechanisms, nodes);
  });
}

/** The connections an NSC status file holds (`connections[].connection`, Connection JSON). */
export function statusFileConnections(status: unknown): Connection[] {
  const conns = (status as { connections?: unknown } | null)?.connections;
  if (!Array.isArray(conns)) return [];
  const out: Connection[] = [];
  for (const c of conns) {
    const raw = (c as { connection?: unknown } | null)?.connection;
    if (!raw || typeof raw !== 'object') continue;
    try {
      out.push(Connection.fromJSON(raw));
    } catch {
      /* not a connection */
    }
  }
  return out;
}

export async function collectStatus(paths: RunPaths, node: string): Promise<MeshStatus> {
  const state = readState(paths);
  const sup = runningSupervisor(state);
  const security = state ? meshSecurityOf(state) : null;
  const t = state?.topology;
  const out: MeshStatus = {
    runDir: paths.dir,
    up: !!sup,
    supervisor: sup ? { pid: sup.pid, uptimeS: uptime(sup.started) ?? 0 } : null,
    security,
    trustDomain: security === 'mtls' ? EMBEDDED_TRUST_DOMAIN : null,
    workloadApi: security === 'mtls' ? `unix://${state?.agentSocket ?? paths.agentSocket}` : null,
    caller: null,
    nodes: [],
    underlay: t ? { netns: t.underlayNetns, netnsExists: netnsExists(t.underlayNetns), bridge: t.bridge, cidr: t.cidr } : null,
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
  const slots = layoutOf(paths, state, node);
  try {
    out.components = await Promise.all(slots.map((slot) => componentStatus(state, slot, sup !== undefined, cli)));
    if (sup && cli) await askComponents(paths, state, slots, cli, out);
  } finally {
    cli?.close();
  }
  const stateOf = (id: string) => out.components.find((c) => c.id === id)?.state ?? 'down';
  out.nodes = (t?.nodes ?? []).map((n) => ({
    name: n.name,
    netns: n.netns,
    netnsExists: netnsExists(n.netns),
    address: n.address,
    nsmgrUrl: nsmgrTcpUrl(n),
    nsmgr: stateOf(`${n.name}/nsmgr`),
    forwarder: stateOf(`${n.name}/forwarder`),
  }));
  out.pods = podStatuses(state);
  return out;
}

async function componentStatus(state: MeshState, slot: ComponentSlot, supervised: boolean, cli: CommandSecurity | undefined): Promise<ComponentStatus> {
  const rec = state.components[slot.id];
  const running = isRunning(rec);
  const probe = running && cli ? await probeHealth(slot.socket, cli.security, STATUS_PROBE_TIMEOUT_MS) : { health: 'UNREACHABLE' as const };
  const health = probe.health;
  const answered = health !== 'UNREACHABLE';
  return {
    id: slot.id,
    name: slot.name,
    node: state.topology ? slot.node : null,
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

/** Registry contents and every nsmgr's connections (merged with the NSCs' status files); a source that fails adds an error. */
async function askComponents(paths: RunPaths, state: MeshState, slots: readonly ComponentSlot[], cli: CommandSecurity, out: MeshStatus): Promise<void> {
  const sec = cli.security;
  const seen: SeenConnection[] = [];
  const nodes = state.topology !== undefined;
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
    ...slots
      .filter((s) => s.name === 'nsmgr')
      .map((s) =>
        initialConnections(s.socket, sec)
          .then((cs) => void seen.push(...cs.map((connection) => ({ connection, ...(nodes ? { node: s.node } : {}) }))))
          .catch((err: unknown) => void out.errors.push(`${nodes ? `${s.id}` : 'nsmgr'} connections: ${errorMessage(err)}`)),
      ),
  ]);
  // The NSCs' own views: only to add mechanisms (segment 0) to connections an nsmgr reports.
  const known = new Set(seen.map((x) => x.connection.path?.pathSegments[0]?.id || x.connection.id));
  for (const p of Object.values(state.pods)) {
    for (const proc of p.processes) {
      if (proc.component !== 'nsc') continue;
      for (const connection of statusFileConnections(readStatusFile(proc.statusFile))) {
        if (known.has(connection.path?.pathSegments[0]?.id || connection.id)) seen.push({ connection });
      }
    }
  }
  out.connections = mergeConnections(seen);
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
        node: p.node ?? null,
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
    ['#', 'NAME', 'SUB', 'AUD', 'TOKEN EXPIRES', 'MECHANISM'],
    segs.map((g) => [String(g.index), g.name, g.sub ?? (g.tokenError ? `(${g.tokenError})` : '-'), g.aud.join(',') || '-', g.tokenExpires ?? '-', g.mechanism ?? '-']),
  );
}

function nodesLines(s: MeshStatus): string[] {
  if (s.nodes.length === 0) return [];
  const u = s.underlay;
  return [
    '',
    `underlay: ${u ? `${u.cidr}, bridge ${u.bridge} in netns ${u.netns}${u.netnsExists ? '' : ' (MISSING)'}` : '-'}`,
    table(
      ['NODE', 'NETNS', 'ADDRESS', 'NSMGR', 'FORWARDER', 'NSMGR URL'],
      s.nodes.map((n) => [n.name, `${n.netns}${n.netnsExists ? '' : ' (missing)'}`, n.address, n.nsmgr, n.forwarder, n.nsmgrUrl]),
    ),
  ];
}

export function formatStatus(s: MeshStatus): string {
  const out: string[] = [];
  if (!s.up) {
    out.push(`mesh is not up (run dir ${s.runDir})`);
    const left = [
      ...s.components.filter((c) => c.pid !== null).map((c) => `${c.id} pid ${c.pid}`),
      ...s.pods.filter((p) => p.running).map((p) => `${p.pod}/${p.component} pid ${p.pid}`),
      ...s.nodes.filter((n) => n.netnsExists).map((n) => `netns ${n.netns}`),
      ...(s.underlay?.netnsExists ? [`netns ${s.underlay.netns}`] : []),
    ];
    if (left.length > 0) out.push(`left over: ${left.join(', ')}; clean up with: nsm down`);
    return out.join('\n');
  }
  out.push(`mesh is up (run dir ${s.runDir}, supervisor pid ${s.supervisor!.pid}, up ${formatUptime(s.supervisor!.uptimeS)})`);
  out.push(securityLine(s), ...nodesLines(s), '');
  const byNode = s.nodes.length > 0;
  out.push(
    table(
      ['COMPONENT', 'STATE', 'PID', 'RESTARTS', 'UPTIME', 'SECURITY', 'SPIFFE ID', 'SVID EXPIRES', 'LAST EXIT'],
      s.components.map((c) => [
        byNode ? c.id : c.name,
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
          ['CONNECTION', 'SERVICE', 'STATE', 'NSC', 'NSE', ...(byNode ? ['NODES'] : []), 'PATH'],
          s.connections.map((c) => [c.id, c.service, c.state, c.nscAddresses.join(',') || '-', c.nseAddresses.join(',') || '-', ...(byNode ? [c.nodes.join(',') || '-'] : []), c.path || '-']),
        ),
  );
  for (const c of s.connections) out.push('', `PATH of ${c.id}:`, segmentTable(c.segments));
  out.push(
    '',
    s.pods.length === 0
      ? 'PODS: none'
      : table(
          ['POD', ...(byNode ? ['NODE'] : []), 'COMPONENT', 'NAME', 'PID', 'STATE', 'UPTIME', 'LAST HEAL'],
          s.pods.map((p) => [p.pod, ...(byNode ? [p.node ?? '-'] : []), p.component, p.name, String(p.pid), p.running ? 'running' : 'exited', formatUptime(p.uptimeS), short(p.lastHeal)]),
        ),
  );
  if (s.errors.length > 0) out.push('', ...s.errors.map((e) => `warning: ${e}`));
  return out.join('\n');
}
