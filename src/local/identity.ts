/**
 * Identity of the one-host mesh (`nsm up`): its embedded CA, kept in `<run dir>/ca/` (root.pem 0644,
 * root.key 0600, dir 0700), and the transport security of the mesh's own CLI commands.
 *
 * - `loadOrCreateCa`: the first `nsm up` creates an EC P-256 root for `nsm.local`; later starts (the
 *   supervisor, an `nsm up` after a crash) load it, so components still running or reconnecting keep
 *   verifying each other. `nsm down` removes it: the trust of a mesh ends with the mesh, a new mesh gets a
 *   new root, and no key outlives the SVIDs it signed.
 * - `CaSource`: an X509Source for a process that holds the CA itself (the supervisor's health checks, the
 *   CLI): an SVID issued in-process, re-issued when half its lifetime has passed.
 * - `commandSecurity`: what an `nsm` command in the host netns (status, apply, health) dials with. The
 *   mesh's Workload API gives SVIDs to the components it started and to pods only, never to an arbitrary
 *   host process, so such a command gets a short-lived `spiffe://nsm.local/node/<node>/cli` SVID from the
 *   CA files in the run dir (root only: the key is 0600). `NSM_INSECURE=true` chooses plaintext,
 *   `SPIFFE_ENDPOINT_SOCKET` a Workload API (SPIRE); nothing falls back to plaintext by itself.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { parseBool } from '../components/config.js';
import { realClock, type Clock } from '../core/clock.js';
import { CancelledError, InvalidArgumentError, NsmError, PermissionDeniedError, UnavailableError, errorMessage } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/log.js';
import { createCa, loadCa, MIN_SVID_TTL_MS, MAX_SVID_TTL_MS, type EmbeddedCa } from '../security/ca.js';
import { isPathSegment } from '../security/identity-policy.js';
import type { Unsubscribe, X509Material, X509Source } from '../security/svid.js';
import { INSECURE, mtls, type TransportSecurity } from '../security/tls.js';
import { ENDPOINT_ENV, workloadApiSource } from '../security/workload-client.js';
import { EMBEDDED_TRUST_DOMAIN, type MeshSecurity, type RunPaths } from './paths.js';
import { isRunning } from './proc.js';
import { readState, type MeshState } from './state.js';

/** Lifetime of the SVID a CLI command issues itself (it lives for one command). */
export const CLI_SVID_TTL_MS = 5 * 60_000;
/** How long a command waits for its first SVID from `SPIFFE_ENDPOINT_SOCKET`. */
export const DEFAULT_SVID_WAIT_MS = 10_000;
export const INSECURE_ENV = 'NSM_INSECURE';

/** `spiffe://nsm.local/node/<node>/<component>`: the ID of a host process of the mesh on `node`. */
export function nodeSpiffeId(node: string, component: string): string {
  for (const [field, v] of [['node', node], ['component', component]] as const) {
    if (!isPathSegment(v)) throw new InvalidArgumentError(field, v, 'cannot be a SPIFFE ID path segment (letters, digits, . _ -)');
  }
  return `spiffe://${EMBEDDED_TRUST_DOMAIN}/node/${node}/${component}`;
}

function writePrivate(path: string, data: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data, { mode, flag: 'wx' });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

function readCaFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new PermissionDeniedError(`cannot read the mesh's ${what} ${path}: it is root's (run as root)`, { cause: err });
    throw new UnavailableError(`cannot read the mesh's ${what} ${path}: ${errorMessage(err)}`, { cause: err });
  }
}

/** The mesh's CA from the run dir; undefined when there is none. Refuses a key others can read. */
export function loadMeshCa(paths: RunPaths, clock: Clock = realClock): EmbeddedCa | undefined {
  const { cert, key } = paths.ca;
  try {
    readdirSync(paths.ca.dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EACCES' || code === 'EPERM') throw new PermissionDeniedError(`cannot read the mesh's CA in ${paths.ca.dir}: it is root's (run as root)`, { cause: err });
    throw err;
  }
  if (!existsSync(cert) && !existsSync(key)) return undefined;
  if (!existsSync(cert) || !existsSync(key)) throw new NsmError(`the mesh's CA in ${paths.ca.dir} is incomplete (need root.pem and root.key); remove the directory (nsm down does) to start with a new CA`);
  const keyPem = readCaFile(key, 'CA key');
  const mode = statSync(key).mode & 0o777;
  if ((mode & 0o077) !== 0) throw new InvalidArgumentError(key, `mode ${mode.toString(8)}`, 'the CA key must not be readable by group or others (chmod 600)');
  const ca = loadCa({ certPem: readCaFile(cert, 'CA certificate'), keyPem, clock });
  if (ca.trustDomain !== EMBEDDED_TRUST_DOMAIN) throw new InvalidArgumentError(cert, ca.trustDomain, `the mesh's CA is for trust domain ${EMBEDDED_TRUST_DOMAIN}`);
  return ca;
}

/** Loads the mesh's CA from the run dir, or creates and saves a new one. */
export function loadOrCreateCa(paths: RunPaths, clock: Clock = realClock): { ca: EmbeddedCa; created: boolean } {
  const loaded = loadMeshCa(paths, clock);
  if (loaded) return { ca: loaded, created: false };
  const ca = createCa({ trustDomain: EMBEDDED_TRUST_DOMAIN, clock });
  mkdirSync(paths.ca.dir, { recursive: true, mode: 0o700 });
  chmodSync(paths.ca.dir, 0o700);
  const { certPem, keyPem } = ca.exportPem();
  writePrivate(paths.ca.key, keyPem, 0o600);
  writePrivate(paths.ca.cert, certPem, 0o644);
  return { ca, created: true };
}

/** Removes the mesh's CA (`nsm down`). */
export function removeCa(paths: RunPaths): boolean {
  const had = existsSync(paths.ca.dir);
  rmSync(paths.ca.dir, { recursive: true, force: true });
  return had;
}

/** An X509Source backed by the CA itself: one SVID for `spiffeId`, re-issued once half its lifetime has passed. */
export class CaSource implements X509Source {
  readonly #ca: EmbeddedCa;
  readonly #ttlMs: number;
  readonly #clock: Clock;
  readonly #listeners = new Set<(m: X509Material) => void>();
  #material: X509Material;
  #renewAt: number;
  #closed = false;

  constructor(
    ca: EmbeddedCa,
    readonly spiffeId: string,
    options: { ttlMs?: number; clock?: Clock } = {},
  ) {
    const ttl = options.ttlMs ?? CLI_SVID_TTL_MS;
    if (!Number.isSafeInteger(ttl) || ttl < MIN_SVID_TTL_MS || ttl > MAX_SVID_TTL_MS) throw new InvalidArgumentError('ttlMs', ttl, `must be whole milliseconds in [${MIN_SVID_TTL_MS}, ${MAX_SVID_TTL_MS}]`);
    this.#ca = ca;
    this.#ttlMs = ttl;
    this.#clock = options.clock ?? realClock;
    [this.#material, this.#renewAt] = this.#issue();
  }

  #issue(): [X509Material, number] {
    const now = this.#clock.now();
    const svid = this.#ca.issue({ spiffeId: this.spiffeId, ttlMs: this.#ttlMs });
    return [{ svid, bundles: this.#ca.bundles }, now + (svid.notAfter.getTime() - now) / 2];
  }

  current(): X509Material {
    if (this.#closed) throw new CancelledError('the CA source is closed');
    if (this.#clock.now() >= this.#renewAt) {
      [this.#material, this.#renewAt] = this.#issue();
      for (const l of [...this.#listeners]) l(this.#material);
    }
    return this.#material;
  }

  ready(): Promise<X509Material> {
    try {
      return Promise.resolve(this.current());
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  onUpdate(listener: (material: X509Material) => void): Unsubscribe {
    this.#listeners.add(listener);
    return () => void this.#listeners.delete(listener);
  }

  close(): void {
    this.#closed = true;
    this.#listeners.clear();
  }
}

/** The mode a mesh state says it runs in; a state without one was written by a plaintext-only nsm. */
export function meshSecurityOf(state: MeshState | undefined): MeshSecurity {
  return state?.security ?? 'insecure';
}

/** A transport security and what releases it. */
export interface CommandSecurity {
  readonly security: TransportSecurity;
  /** Where the identity comes from, for messages: `insecure (NSM_INSECURE=true)`, `node/<node>/cli SVID from <ca dir>`, … */
  readonly describe: string;
  close(): void;
}

/** How a CLI command talks to the local mesh in `paths`: plaintext when it runs insecure, else with a CLI SVID from its CA. */
export function localMeshSecurity(paths: RunPaths, state: MeshState | undefined, node: string): CommandSecurity {
  if (meshSecurityOf(state) === 'insecure') return { security: INSECURE, describe: `insecure (the mesh in ${paths.dir} runs plaintext)`, close: () => undefined };
  const ca = loadMeshCa(paths);
  if (!ca) throw new UnavailableError(`the mesh in ${paths.dir} runs with mTLS but its CA (${paths.ca.dir}) is gone; restart it with: nsm down; nsm up`);
  const source = new CaSource(ca, nodeSpiffeId(node, 'cli'));
  return { security: mtls(source), describe: `${source.spiffeId} (issued from ${paths.ca.dir})`, close: () => source.close() };
}

export interface CommandSecurityOptions {
  readonly paths: RunPaths;
  readonly node: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly log?: Logger;
  readonly waitMs?: number;
  readonly signal?: AbortSignal;
}

/**
 * The transport security of a command that may talk to any nsm server (apply, delete, health): plaintext
 * when `NSM_INSECURE=true`; an SVID from `SPIFFE_ENDPOINT_SOCKET` when it is set (SPIRE, a pod of the
 * mesh); else the local mesh's mode (a CLI SVID from its CA when secure). No mesh and neither variable: an
 * UnavailableError that says what to set.
 */
export async function commandSecurity(o: CommandSecurityOptions): Promise<CommandSecurity> {
  const env = o.env ?? process.env;
  const raw = env[INSECURE_ENV]?.trim();
  let insecure = false;
  if (raw) {
    try {
      insecure = parseBool(raw);
    } catch {
      throw new InvalidArgumentError(INSECURE_ENV, raw, 'expected true or false');
    }
  }
  if (insecure) return { security: INSECURE, describe: `insecure (${INSECURE_ENV}=true)`, close: () => undefined };
  const endpoint = env[ENDPOINT_ENV]?.trim();
  if (endpoint) {
    const source = workloadApiSource({ endpoint, log: o.log ?? silentLogger, signal: o.signal });
    const waitMs = o.waitMs ?? DEFAULT_SVID_WAIT_MS;
    try {
      const m = await source.ready(AbortSignal.timeout(waitMs));
      return { security: mtls(source), describe: `${m.svid.spiffeId} (from ${endpoint})`, close: () => source.close() };
    } catch (err) {
      source.close();
      throw new UnavailableError(`no X.509-SVID from ${ENDPOINT_ENV}=${endpoint} within ${waitMs} ms: ${errorMessage(err)}`, { cause: err });
    }
  }
  const state = readState(o.paths);
  if (state?.supervisor && isRunning(state.supervisor)) return localMeshSecurity(o.paths, state, o.node);
  throw new UnavailableError(
    `no identity to call with: no mesh is up in ${o.paths.dir} (its CA would give this command an SVID), ${ENDPOINT_ENV} is not set and ${INSECURE_ENV} is not true`,
  );
}
