/**
 * Identities for a secure bench mesh (mTLS + ES256 path tokens instead of NSM_INSECURE=true): one test CA
 * (trust domain `nsm.bench`, real EC P-256 X.509-SVIDs from the embedded CA) and, per component process, a
 * SPIFFE Workload API of its own (src/testing/workload-api.ts, a real gRPC server on a unix socket in the
 * bench dir) that serves that component its SVID `spiffe://nsm.bench/<name>`. The bench starts every process
 * itself, so a socket per process is its attestation: nothing else is given that socket. In-process NSC
 * samples get their identity directly (`identityFromSource` over an in-memory source of a fresh SVID), made
 * before their clock starts, as a real NSC has its SVID before it sends its first Request.
 */
import { join } from 'node:path';
import type { Logger } from '../src/core/log.js';
import { identityFromSource, insecureIdentity, type Identity } from '../src/security/identity.js';
import { makeTestSvid, testCa, testX509Source } from '../src/testing/svid.js';
import { TestWorkloadApi, svidResponse } from '../src/testing/workload-api.js';
import { onCleanup } from './lib.js';

export const BENCH_TRUST_DOMAIN = 'nsm.bench';

/** `--secure` / `--insecure` of a bench: which meshes to run (both when neither or both are given). */
export function securityModes(argv: readonly string[] = process.argv): Array<'insecure' | 'secure'> {
  const s = argv.includes('--secure');
  const i = argv.includes('--insecure');
  if (s && !i) return ['secure'];
  if (i && !s) return ['insecure'];
  return ['insecure', 'secure'];
}

/** The Workload API sockets and SVIDs of one secure bench mesh (all in `dir`; stopped at cleanup). */
export class BenchIdentities {
  readonly #apis = new Map<string, TestWorkloadApi>();

  constructor(readonly dir: string) {}

  /** The SPIFFE ID of a component or workload named `name` (e.g. `nsmgr`, `nse`, `nsc/nscb-1`). */
  static id(name: string): string {
    return `spiffe://${BENCH_TRUST_DOMAIN}/${name}`;
  }

  /**
   * The env that gives a process started by the bench its identity: SPIFFE_ENDPOINT_SOCKET of a Workload
   * API serving `spiffe://nsm.bench/<name>` (started on first use; a restarted component gets the same one),
   * NSM_INSECURE=false.
   */
  async env(name: string): Promise<Record<string, string>> {
    let api = this.#apis.get(name);
    if (!api) {
      api = new TestWorkloadApi(join(this.dir, `spiffe-${name.replace(/[^A-Za-z0-9.-]/g, '_')}.sock`));
      await api.start();
      api.push(svidResponse(makeTestSvid(BenchIdentities.id(name)), testCa(BENCH_TRUST_DOMAIN)));
      this.#apis.set(name, api);
      const started = api;
      onCleanup(() => started.stop());
    }
    return { SPIFFE_ENDPOINT_SOCKET: `unix://${api.path}`, NSM_INSECURE: 'false' };
  }

  /** An in-process identity with a fresh SVID `spiffe://nsm.bench/<name>`; its `stop()` closes the source. */
  static identity(name: string, log: Logger): Identity {
    return identityFromSource(testX509Source(makeTestSvid(BenchIdentities.id(name))), { log, ownsSource: true });
  }
}

/** The in-process identity of a sample: secure (a fresh SVID) or insecure (plaintext, HS256). */
export function sampleIdentity(secure: boolean, name: string, log: Logger): Identity {
  return secure ? BenchIdentities.identity(name, log) : insecureIdentity({ log, insecureSubject: `nsm-ts/${name}` });
}
