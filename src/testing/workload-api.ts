/**
 * A SPIFFE Workload API server for tests (not the embedded issuer): the generated definition served over
 * a real unix socket, answering FetchX509SVID with whatever the test pushes, so Workload API clients (ours,
 * go-spiffe's) are tested against real gRPC. `svidResponse` builds the wire response for an SVID of a CA.
 */
import { rmSync } from 'node:fs';
import { createServer, ServerError, Status, type CallContext, type Server } from 'nice-grpc';
import { SpiffeWorkloadAPIDefinition, type X509BundlesResponse, type X509SVIDResponse } from '../api/gen/workload.js';
import type { EmbeddedCa } from '../security/ca.js';
import type { X509Svid } from '../security/svid.js';
import { WORKLOAD_HEADER } from '../security/workload-client.js';
import { svidToDer } from '../security/x509.js';

export function svidResponse(svid: X509Svid, ca: EmbeddedCa, federated: Record<string, Buffer> = {}): X509SVIDResponse {
  const der = svidToDer(svid);
  return { svids: [{ spiffeId: svid.spiffeId, x509Svid: der.certs, x509SvidKey: der.key, bundle: ca.root.raw, hint: '' }], crl: [], federatedBundles: federated };
}

/**
 * A SPIFFE Workload API server for tests: the generated definition over a real unix socket. It answers
 * each FetchX509SVID with the current response and pushes every later `push`; `deny` answers
 * PermissionDenied as SPIRE does for a workload without an entry.
 */
export class TestWorkloadApi {
  calls = 0;
  headers: Array<string | undefined> = [];
  deny = false;
  #current: X509SVIDResponse | undefined;
  readonly #wakers = new Set<() => void>();
  #server: Server | undefined;

  constructor(readonly path: string) {}

  push(resp: X509SVIDResponse): void {
    this.#current = resp;
    for (const w of this.#wakers) w();
  }

  async start(): Promise<void> {
    rmSync(this.path, { force: true });
    const server = createServer();
    server.add(SpiffeWorkloadAPIDefinition, {
      fetchX509SVID: (_req, ctx) => this.#serve(ctx),
      fetchX509Bundles: (_req, ctx) => this.#bundles(ctx),
    });
    await server.listen(`unix://${this.path}`);
    this.#server = server;
  }

  async *#serve(ctx: CallContext): AsyncGenerator<X509SVIDResponse> {
    this.calls++;
    this.headers.push(ctx.metadata.get(WORKLOAD_HEADER));
    if (this.deny) throw new ServerError(Status.PERMISSION_DENIED, 'no identity issued');
    let sent: X509SVIDResponse | undefined;
    while (!ctx.signal.aborted) {
      if (this.#current && this.#current !== sent) {
        sent = this.#current;
        yield sent;
      }
      await this.#changed(ctx.signal);
    }
  }

  /** FetchX509Bundles: the bundle of the current SVID's trust domain (not used by the client under test). */
  async *#bundles(ctx: CallContext): AsyncGenerator<X509BundlesResponse> {
    const svid = this.#current?.svids[0];
    if (svid) yield { crl: [], bundles: { [svid.spiffeId.replace(/^(spiffe:\/\/[^/]+).*$/, '$1')]: svid.bundle } };
    await this.#changed(ctx.signal);
  }

  #changed(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        this.#wakers.delete(wake);
        signal.removeEventListener('abort', wake);
        resolve();
      };
      this.#wakers.add(wake);
      signal.addEventListener('abort', wake);
    });
  }

  async stop(): Promise<void> {
    await this.#server?.forceShutdown();
    this.#server = undefined;
    for (const w of this.#wakers) w();
  }
}
