/**
 * Upstream Go programs the end-to-end tests run beside nsm-ts (SPIRE now, upstream NSM's cmd-* later), as
 * built by scripts/install-peers.sh into a cache outside the repository. A test asks for the peers it
 * needs; the script returns at once when they are cached (scripts/setup.sh installs them before `npm test`)
 * and builds them otherwise. Its exit code decides: installed → the binary paths; `go` absent → skip with
 * the printed reason; anything else → the test fails loudly (CI machines have Go and must not skip).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const ROOT = new URL('../..', import.meta.url).pathname;
export const INSTALLER = join(ROOT, 'scripts/install-peers.sh');
/** scripts/install-peers.sh: `go` is not installed. */
export const EXIT_NO_GO = 3;
/** A cold build of SPIRE took 22 min on the busy 2-core machine; a cached run takes milliseconds. */
const INSTALL_TIMEOUT_MS = 60 * 60_000;

export type PeerName = 'spire-server' | 'spire-agent' | 'cmd-nsmgr' | 'cmd-nsc' | 'cmd-nse-icmp-responder' | 'cmd-registry-memory';

export type Peers =
  | { readonly ok: true; readonly bin: Readonly<Record<string, string>> }
  | { readonly ok: false; readonly skip: string };

/** Parses the installer's stdout: one `<name> <path>` line per peer. */
export function parseInstallerOutput(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^(\S+) (\/\S+)$/.exec(line.trim());
    if (m) out[m[1]] = m[2];
  }
  return out;
}

/**
 * Installs (or finds cached) `names`. Resolves `{ ok: false, skip }` only when `go` is missing; rejects,
 * naming the peers and carrying the installer's output, when an install fails.
 */
export function ensurePeers(names: readonly PeerName[], env: NodeJS.ProcessEnv = process.env): Promise<Peers> {
  return new Promise((resolve, reject) => {
    execFile('sh', [INSTALLER, ...names], { env, encoding: 'utf8', timeout: INSTALL_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? ((err as NodeJS.ErrnoException & { code?: unknown }).code as number | undefined) : 0;
      if (code === EXIT_NO_GO) {
        const reason = stderr.split('\n').find((l) => l.includes('SKIP')) ?? stderr.trim();
        return resolve({ ok: false, skip: reason.replace(/^install-peers: SKIP: /, '') });
      }
      if (err) return reject(new Error(`scripts/install-peers.sh ${names.join(' ')} FAILED (exit ${String(code ?? err.message)}):\n${stderr.slice(-4000)}`));
      const bin = parseInstallerOutput(stdout);
      const missing = names.filter((n) => !bin[n]);
      if (missing.length > 0) return reject(new Error(`scripts/install-peers.sh printed no path for ${missing.join(' ')}: ${stdout}`));
      resolve({ ok: true, bin });
    });
  });
}

/** The cache scripts/install-peers.sh builds into (NSM_PEERS_CACHE), shared by the Go fixtures of the tests. */
export function peersCache(env: NodeJS.ProcessEnv = process.env): string {
  return env.NSM_PEERS_CACHE || '/var/cache/nsm-ts/peers';
}

const NETWORK_TROUBLE = /dial tcp|no such host|i\/o timeout|connection refused|TLS handshake/;
const fixtures = new Map<string, Promise<Peers>>();

/**
 * Builds the Go program of ours in test/fixtures/<name> (a peer that links an upstream library: go-spiffe,
 * NSM's sdk) once per content of its sources, into the peers cache with the module and build caches
 * install-peers.sh uses (so SPIRE's downloads serve it too). `go` absent or the module proxy unreachable:
 * `{ ok: false, skip }` with the reason; any other failure rejects with the build output (fails loudly).
 */
export function buildGoFixture(name: string): Promise<Peers> {
  let p = fixtures.get(name);
  if (!p) {
    p = (async (): Promise<Peers> => {
      const src = join(ROOT, 'test/fixtures', name);
      const goVersion = await runGo(['version'], src, process.env).catch(() => undefined);
      if (goVersion === undefined || goVersion.code !== 0) return { ok: false, skip: 'go is not installed' };
      const hash = createHash('sha256');
      for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(readFileSync(join(src, f)));
      const cache = peersCache();
      const bin = join(cache, 'fixtures', `${name}-${hash.digest('hex').slice(0, 16)}`);
      if (existsSync(bin)) return { ok: true, bin: { [name]: bin } };
      mkdirSync(dirname(bin), { recursive: true });
      const env = { ...process.env, GOPATH: join(cache, 'go/path'), GOMODCACHE: join(cache, 'go/mod'), GOCACHE: join(cache, 'go/build') };
      const r = await runGo(['build', '-mod=readonly', '-buildvcs=false', '-o', bin, '.'], src, env);
      if (r.code === 0) return { ok: true, bin: { [name]: bin } };
      if (NETWORK_TROUBLE.test(r.out)) return { ok: false, skip: `the Go module proxy cannot be reached: ${r.out.split('\n')[0]}` };
      throw new Error(`building test/fixtures/${name} failed:\n${r.out.slice(-4000)}`);
    })();
    fixtures.set(name, p);
  }
  return p;
}

function runGo(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    execFile('nice', ['-n', '10', 'go', ...args], { cwd, env, encoding: 'utf8', timeout: INSTALL_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') return reject(err);
      resolve({ code: err ? 1 : 0, out: `${stdout}${stderr}` });
    });
  });
}
