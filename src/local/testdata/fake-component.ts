/**
 * A stand-in for a component in local-mesh tests (before or instead of the real one): serves Health on
 * NSM_LISTEN_ON when it is a unix URL, writes `{"state":"connected"}` to NSM_STATUS_FILE, registers an
 * endpoint named NSM_NAME directly with NSM_TEST_REGISTRY_URL when set (a fake nse), stops on SIGTERM.
 */
import { createChannel, createClient } from 'nice-grpc';
import { NetworkServiceEndpointRegistryDefinition } from '../../api/gen/registry.js';
import { serve, parseUrl, grpcTarget, type GrpcServer } from '../../core/transport.js';
import { writeFileAtomic } from '../state.js';
import { INSECURE } from '../../security/tls.js';

export async function runFakeComponent(name: string, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let server: GrpcServer | undefined;
  const listen = env.NSM_LISTEN_ON;
  if (listen && parseUrl(listen).kind === 'unix') server = await serve([listen], [], INSECURE);
  if (env.NSM_STATUS_FILE) {
    writeFileAtomic(env.NSM_STATUS_FILE, JSON.stringify({ component: name, name: env.NSM_NAME, state: 'connected', fake: true }) + '\n');
  }
  if (env.NSM_TEST_REGISTRY_URL && name === 'nse') {
    const ch = createChannel(grpcTarget(env.NSM_TEST_REGISTRY_URL));
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
