/**
 * Upstream Go programs the end-to-end tests run beside nsm-ts (SPIRE now, upstream NSM's cmd-* later), as
 * built by scripts/install-peers.sh into a cache outside the repository. A test asks for the peers it
 * needs; the script returns at once when they are cached (scripts/setup.sh installs them before `npm test`)
 * and builds them otherwise. Its exit code decides: installed → the binary paths; `go` absent → skip with
 * the printed reason; anything else → the test fails loudly (CI machines have Go and must not skip).
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

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
