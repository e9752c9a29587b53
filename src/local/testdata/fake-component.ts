/**
 * A stand-in for a component in local-mesh tests (before or instead of the real one): serves Health on
 * NSM_LISTEN_ON when it is a unix URL, writes `{"state":"connected"}` to NSM_STATUS_FILE, registers an
 * endpoint named NSM_NAME directly with NSM_TEST_REGISTRY_URL when set (a fake nse), stops on SIGTERM.
 * Identity as the components' contract says: `NSM_INSECURE=true` → plaintext; else an X.509-SVID from
 * `SPIFFE_ENDPOINT_SOCKET` (waited for), then mTLS on its server; neither → exit 2 naming the variable.
 * With NSMT_SVID_FILE set, writes the SPIFFE ID it got there (what the Workload API attested it as).
 */
import { createClient } from 'nice-grpc';
import { NetworkServiceEndpointRegistryDefinition } from '../../api/gen/registry.js';
import { openChannel, serve, parseUrl, type GrpcServer } from '../../core/transport.js';
import { writeFileAtomic } from '../state.js';
import { createLogger } from '../../core/log.js';
import { INSECURE, mtls, type TransportSecurity } from '../../security/tls.js';
import { workloadApiSource } from '../../security/workload-client.js';

async function fakeSecurity(name: string, env: NodeJS.ProcessEnv): Promise<TransportSecurity> {
  if (env.NSM_INSECURE === 'true') return INSECURE;
  const endpoint = env.SPIFFE_ENDPOINT_SOCKET;
  if (!endpoint) {
    process.stderr.write(`fake ${name}: SPIFFE_ENDPOINT_SOCKET is not set and NSM_INSECURE is not true\n`);
    process.exit(2);
  }
  const source = workloadApiSource({ endpoint, log: createLogger(`fake-${name}`, 'info', process.stdout) });
  const m = await source.ready();
  process.stdout.write(`fake ${name}: SVID ${m.svid.spiffeId} until ${m.svid.notAfter.toISOString()}\n`);
  if (env.NSMT_SVID_FILE) writeFileAtomic(env.NSMT_SVID_FILE, JSON.stringify({ spiffeId: m.svid.spiffeId, notAfter: m.svid.notAfter.toISOString() }) + '\n');
  return mtls(source);
}

export async function runFakeComponent(name: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let server: GrpcServer | undefined;
  const listen = env.NSM_LISTEN_ON;
  const security = await fakeSecurity(name, env);
  if (listen && parseUrl(listen).kind === 'unix') server = await serve([listen], [], security);
  if (env.NSM_STATUS_FILE) {
    writeFileAtomic(env.NSM_STATUS_FILE, JSON.stringify({ component: name, name: env.NSM_NAME, state: 'connected', fake: true }) + '\n');
  }
  if (env.NSM_TEST_REGISTRY_URL && name === 'nse') {
    const ch = openChannel(env.NSM_TEST_REGISTRY_URL, security);
    await createClient(NetworkServiceEndpointRegistryDefinition, ch).register({
      name: env.NSM_NAME ?? 'fake-nse',
      networkServiceNames: (env.NSM_SERVICE_NAMES ?? 'fake').split(','),
      url: 'unix:///nonexistent/fake-nse.sock',
      expirationTime: new Date(Date.now() + 10 * 60_000),
    });
    ch.close();
  }
  process.stdout.write(`fake ${name} ready (pid ${process.pid}, listen ${listen ?? '-'})\n`);
  const keep = setInterval(() => undefined, 60_000);
  const stop = () => {
    clearInterval(keep);
    void (server?.stop() ?? Promise.resolve()).then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
