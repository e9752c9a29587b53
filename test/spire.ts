/**
 * A real SPIRE (spire-server + spire-agent v1.13.3, built by scripts/install-peers.sh) for end-to-end tests,
 * on one host as SPIRE's own one-host setup does: sqlite datastore, join-token node attestation with an
 * `insecure_bootstrap` agent, unix workload attestation (uid/gid/path selectors, `discover_workload_path`).
 *
 * Where it binds: everything the host sees is a unix socket in `dir` — the server's API (`server/api.sock`,
 * used by the `spire-server` CLI) and the agent's Workload API (`agent/api.sock`, for
 * `SPIFFE_ENDPOINT_SOCKET`). The one TCP connection SPIRE has, agent → server (the agent cannot reach the
 * server over a unix socket), stays inside a network namespace this harness creates (`nsmt-spire-*`): both
 * run there and the server binds 127.0.0.1 of that namespace, so no port opens in the host netns. A path
 * socket is reachable from every netns, and all processes share the PID namespace, so workloads anywhere on
 * the host (pods of the local mesh included) are attested by their uid, gid and binary.
 *
 * `stop()` kills exactly the two pids it started, deletes the namespace and removes `dir`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { trustDomainOf } from '../src/security/svid.js';
import { ensurePeers } from './peers.js';

const run = promisify(execFile);

export const SPIRE_VERSION = 'v1.13.3';
/** The agent ↔ server port inside the harness's own network namespace. */
const SERVER_PORT = 8081;
export const DEFAULT_SVID_TTL_S = 60;
const MIN_SVID_TTL_S = 2;
const MAX_SVID_TTL_S = 24 * 3600;
const START_TIMEOUT_MS = 60_000;
const CLI_TIMEOUT_MS = 20_000;
const KILL_GRACE_MS = 5_000;

export interface SpireOptions {
  /** An empty directory; everything SPIRE writes goes here, and `stop()` removes it. */
  readonly dir: string;
  /** e.g. `example.org`. */
  readonly trustDomain: string;
  /** The server's default X.509-SVID TTL, seconds (2 … 86400; default 60). The agent renews at half-life. */
  readonly svidTtlSeconds?: number;
}

export interface SpireEntry {
  readonly id: string;
  readonly spiffeId: string;
  readonly selectors: readonly string[];
}

export interface Spire {
  readonly dir: string;
  readonly trustDomain: string;
  /** The agent's Workload API socket path. */
  readonly agentSocket: string;
  /** `unix://<agentSocket>`, the value for SPIFFE_ENDPOINT_SOCKET. */
  readonly endpointSocket: string;
  readonly serverSocket: string;
  /** The agent's SPIFFE ID (from its join token), the parent of every entry created here. */
  readonly agentId: string;
  readonly bin: { readonly server: string; readonly agent: string };
  readonly pids: { readonly server: number; readonly agent: number };
  readonly netns: string;
  /** Registers `spiffeId` for `selectors` (`unix:uid:0`, …) and resolves once the agent holds an SVID for it. */
  createEntry(spiffeId: string, selectors: readonly string[], opts?: { x509SvidTtlSeconds?: number }): Promise<SpireEntry>;
  /** `spire-server <args> -socketPath <server socket>`; resolves stdout. */
  server(...args: string[]): Promise<string>;
  log(which: 'server' | 'agent'): string;
  stop(): Promise<void>;
}

// ---- configuration (pure) ------------------------------------------------------------------------------

const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

export function checkOptions(o: SpireOptions): Required<SpireOptions> {
  if (!TRUST_DOMAIN.test(o.trustDomain)) throw new Error(`SpireOptions.trustDomain: ${JSON.stringify(o.trustDomain)} is not a trust domain name (lowercase letters, digits, '.', '_', '-')`);
  const ttl = o.svidTtlSeconds ?? DEFAULT_SVID_TTL_S;
  if (!Number.isInteger(ttl) || ttl < MIN_SVID_TTL_S || ttl > MAX_SVID_TTL_S) throw new Error(`SpireOptions.svidTtlSeconds: ${ttl} must be an integer in ${MIN_SVID_TTL_S}..${MAX_SVID_TTL_S}`);
  if (!o.dir.startsWith('/')) throw new Error(`SpireOptions.dir: ${JSON.stringify(o.dir)} must be an absolute path`);
  return { dir: o.dir, trustDomain: o.trustDomain, svidTtlSeconds: ttl };
}

/** An entry this harness can register: an ID of its trust domain, `type:value` selectors, a bounded TTL. */
export function checkEntry(trustDomain: string, spiffeId: string, selectors: readonly string[], ttl?: number): void {
  if (trustDomainOf(spiffeId) !== trustDomain) throw new Error(`createEntry: spiffeId ${JSON.stringify(spiffeId)} is not a SPIFFE ID of ${trustDomain}`);
  if (selectors.length === 0) throw new Error(`createEntry(${spiffeId}): selectors: at least one`);
  for (const sel of selectors) if (!/^[a-z0-9_]+:\S+$/.test(sel)) throw new Error(`createEntry(${spiffeId}): selector ${JSON.stringify(sel)} is not type:value (e.g. unix:uid:0)`);
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < MIN_SVID_TTL_S || ttl > MAX_SVID_TTL_S)) throw new Error(`createEntry(${spiffeId}): x509SvidTtlSeconds: ${ttl} must be an integer in ${MIN_SVID_TTL_S}..${MAX_SVID_TTL_S}`);
}

const hclString = (s: string) => JSON.stringify(s);

export function serverConfig(o: { dir: string; trustDomain: string; svidTtlSeconds: number }): string {
  const d = join(o.dir, 'server');
  return `server {
  bind_address = "127.0.0.1"
  bind_port = "${SERVER_PORT}"
  socket_path = ${hclString(join(d, 'api.sock'))}
  trust_domain = ${hclString(o.trustDomain)}
  data_dir = ${hclString(join(d, 'data'))}
  log_level = "DEBUG"
  default_x509_svid_ttl = "${o.svidTtlSeconds}s"
  agent_ttl = "1h"
  ca_ttl = "24h"
  # The server re-reads its entry cache every second (default 5 s): new entries reach agents sooner.
  experimental {
    cache_reload_interval = "1s"
  }
}

plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = ${hclString(join(d, 'data', 'datastore.sqlite3'))}
    }
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
}
`;
}

export function agentConfig(o: { dir: string; trustDomain: string }): string {
  const d = join(o.dir, 'agent');
  return `agent {
  data_dir = ${hclString(join(d, 'data'))}
  log_level = "DEBUG"
  server_address = "127.0.0.1"
  server_port = "${SERVER_PORT}"
  socket_path = ${hclString(join(d, 'api.sock'))}
  trust_domain = ${hclString(o.trustDomain)}
  insecure_bootstrap = true
  # Entries reach the agent within a second (default 5 s), so tests wait less.
  experimental {
    sync_interval = "1s"
  }
}

plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "memory" {
    plugin_data {}
  }
  WorkloadAttestor "unix" {
    plugin_data {
      discover_workload_path = true
    }
  }
}
`;
}

/** The entry id in `spire-server entry create -output json`. */
export function parseEntryCreate(stdout: string): string {
  const out = JSON.parse(stdout) as { results?: Array<{ status?: { code?: number; message?: string }; entry?: { id?: string } }> };
  const r = out.results?.[0];
  if (!r || (r.status?.code ?? 0) !== 0 || !r.entry?.id) throw new Error(`spire-server entry create: ${r?.status?.message ?? stdout}`);
  return r.entry.id;
}

/** The token in `spire-server token generate -output json` (`{"value": "…"}`). */
export function parseToken(stdout: string): string {
  const v = (JSON.parse(stdout) as { value?: unknown }).value;
  if (typeof v !== 'string' || v.length === 0) throw new Error(`spire-server token generate: no token in ${stdout}`);
  return v;
}

// ---- processes -----------------------------------------------------------------------------------------

interface Child {
  readonly child: ChildProcess;
  readonly exit: Promise<number | null>;
  readonly logFile: string;
}

function startIn(netns: string, bin: string, args: string[], logFile: string): Child {
  const out = createWriteStream(logFile, { flags: 'a' });
  // `ip netns exec` execs the program in place: the pid spawned is the SPIRE process itself.
  const child = spawn('ip', ['netns', 'exec', netns, bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const exit = new Promise<number | null>((r) => child.once('exit', (code, sig) => r(code ?? (sig ? 128 : null))));
  return { child, exit, logFile };
}

async function stopChild(c: Child | undefined): Promise<void> {
  if (!c || c.child.exitCode !== null || c.child.signalCode !== null) return;
  c.child.kill('SIGTERM');
  const timer = setTimeout(() => c.child.kill('SIGKILL'), KILL_GRACE_MS);
  await c.exit;
  clearTimeout(timer);
}

const readLog = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
const tail = (s: string, n = 3000) => s.slice(-n);

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, dead?: Child): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (dead && (dead.child.exitCode !== null || dead.child.signalCode !== null)) throw new Error(`${what}: the process exited (${dead.child.exitCode ?? dead.child.signalCode}):\n${tail(readLog(dead.logFile))}`);
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function cli(bin: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(bin, args, { encoding: 'utf8', timeout: CLI_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${bin.split('/').pop()} ${args.join(' ')}: ${(e.stderr || e.stdout || e.message).trim()}`);
  }
}

// ---- the harness ---------------------------------------------------------------------------------------

/**
 * Starts SPIRE in `dir`; the binaries come from scripts/install-peers.sh (its failure rejects with its
 * output; a missing `go` rejects with `SpireUnavailableError`, which a test turns into a skip).
 */
export async function startSpire(options: SpireOptions): Promise<Spire> {
  const o = checkOptions(options);
  const peers = await ensurePeers(['spire-server', 'spire-agent']);
  if (!peers.ok) throw new SpireUnavailableError(peers.skip);
  const bin = { server: peers.bin['spire-server'], agent: peers.bin['spire-agent'] };
  const netns = `nsmt-spire-${Math.random().toString(36).slice(2, 7)}`;
  let server: Child | undefined;
  let agent: Child | undefined;
  const cleanup = async () => {
    await stopChild(agent);
    await stopChild(server);
    await run('ip', ['netns', 'del', netns]).catch(() => undefined);
    rmSync(o.dir, { recursive: true, force: true });
  };
  try {
    // Workloads of any uid must reach the agent socket below `dir` (the test runs one as nobody).
    chmodSync(o.dir, 0o755);
    for (const d of ['server', 'agent']) mkdirSync(join(o.dir, d, 'data'), { recursive: true, mode: 0o755 });
    writeFileSync(join(o.dir, 'server.conf'), serverConfig(o));
    writeFileSync(join(o.dir, 'agent.conf'), agentConfig(o));
    await run('ip', ['netns', 'add', netns]);
    await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);

    const serverSocket = join(o.dir, 'server', 'api.sock');
    const agentSocket = join(o.dir, 'agent', 'api.sock');
    server = startIn(netns, bin.server, ['run', '-config', join(o.dir, 'server.conf')], join(o.dir, 'server.log'));
    await until('spire-server healthcheck', () => cli(bin.server, ['healthcheck', '-socketPath', serverSocket]), START_TIMEOUT_MS, server);

    const agentId = `spiffe://${o.trustDomain}/nsmt/agent`;
    const token = parseToken(await cli(bin.server, ['token', 'generate', '-socketPath', serverSocket, '-spiffeID', agentId, '-ttl', '600', '-output', 'json']));
    agent = startIn(netns, bin.agent, ['run', '-config', join(o.dir, 'agent.conf'), '-joinToken', token], join(o.dir, 'agent.log'));
    await until('spire-agent healthcheck', () => cli(bin.agent, ['healthcheck', '-socketPath', agentSocket]), START_TIMEOUT_MS, agent);
    return harness(o, bin, netns, server, agent, { serverSocket, agentSocket, agentId }, cleanup);
  } catch (err) {
    const logs = `\n--- server log ---\n${tail(readLog(join(o.dir, 'server.log')))}\n--- agent log ---\n${tail(readLog(join(o.dir, 'agent.log')))}`;
    await cleanup();
    throw Object.assign(err as Error, { message: `startSpire: ${(err as Error).message}${logs}` });
  }
}

function harness(
  o: Required<SpireOptions>, bin: { server: string; agent: string }, netns: string, server: Child, agent: Child,
  s: { serverSocket: string; agentSocket: string; agentId: string }, cleanup: () => Promise<void>,
): Spire {
  const srv = (...args: string[]) => cli(bin.server, [...args, '-socketPath', s.serverSocket]);
  return {
    dir: o.dir,
    trustDomain: o.trustDomain,
    agentSocket: s.agentSocket,
    endpointSocket: `unix://${s.agentSocket}`,
    serverSocket: s.serverSocket,
    agentId: s.agentId,
    bin,
    pids: { server: server.child.pid!, agent: agent.child.pid! },
    netns,
    server: srv,
    log: (which) => readLog(which === 'server' ? server.logFile : agent.logFile),
    async createEntry(spiffeId, selectors, opts = {}) {
      checkEntry(o.trustDomain, spiffeId, selectors, opts.x509SvidTtlSeconds);
      const args = ['entry', 'create', '-parentID', s.agentId, '-spiffeID', spiffeId, '-output', 'json'];
      for (const sel of selectors) args.push('-selector', sel);
      if (opts.x509SvidTtlSeconds !== undefined) args.push('-x509SVIDTTL', String(opts.x509SvidTtlSeconds));
      const id = parseEntryCreate(await srv(...args));
      // Once the entry has synced, the agent mints its SVID and logs it into its cache (debug level).
      const cached = `msg="SVID updated" entry=${id} `;
      await until(`the agent to sync entry ${id} (${spiffeId})`, async () => (readLog(agent.logFile).includes(cached) ? true : undefined), START_TIMEOUT_MS, agent);
      return { id, spiffeId, selectors };
    },
    stop: cleanup,
  };
}

export class SpireUnavailableError extends Error {
  override readonly name = 'SpireUnavailableError';
}
