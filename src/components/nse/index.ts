/**
 * nse — the icmp-responder endpoint, as upstream cmd-nse-icmp-responder: registers its services (if
 * NSM_REGISTER_SERVICE) and itself through its nsmgr (kept alive), and answers Requests with
 * point-to-point addresses from NSM_CIDR_PREFIX and a kernel mechanism in its own netns. The "responder"
 * is the kernel answering pings on the interface the forwarder creates.
 * Chain: endpoint chain → ipam (group of point-to-point) → mechanisms{KERNEL: kernel server}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetworkService, NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { realClock, type Clock } from '../../core/clock.js';
import { ChannelPool, serve } from '../../core/transport.js';
import { groupIpamServer } from '../../networkservice/ipam/index.js';
import { kernelMechanismServer } from '../../networkservice/mechanisms/kernel/index.js';
import { mechanismsServer } from '../../networkservice/mechanisms/index.js';
import { nseRegistryClient, nsRegistryClient, startNsRegistration, startRegistration, type Registration } from '../../registry/client/index.js';
import type { Running } from '../../core/lifecycle.js';
import { endpoint } from '../endpoint.js';
import { nseConfig } from './config.js';
import { withIdentity, type IdentityDeps } from '../identity.js';
import type { Identity } from '../../security/identity.js';

export { nseConfig };
export type NseConfig = ReturnType<typeof nseConfig.parse>;

export interface RunningNse extends Running {
  readonly url: string;
  readonly registered: Promise<unknown>;
}

export interface NseDeps extends IdentityDeps {
  readonly netnsUrl: string;
  readonly clock?: Clock;
}

export function startNse(config: NseConfig, deps: NseDeps): Promise<RunningNse> {
  return withIdentity(config, deps, `nse/${config.name}`, (identity) => run(config, deps, identity));
}

async function run(config: NseConfig, deps: NseDeps, identity: Identity): Promise<RunningNse> {
  const clock = deps.clock ?? realClock;
  const log = deps.log;
  const pool = new ChannelPool(identity.security);
  const insecure = identity.insecure;
  const tokens = identity.tokens;
  let tmp: string | undefined;
  let url = config.listenOn;
  if (!url) {
    tmp = mkdtempSync(join(tmpdir(), `${config.name.replace(/[^A-Za-z0-9._-]/g, '_')}-`));
    url = `unix://${join(tmp, 'listen.on')}`;
  }
  const ep = endpoint({ name: config.name, log, clock, tokens, pool, insecure }, [
    groupIpamServer(config.cidrPrefix, { policy: config.ipamPolicy }),
    mechanismsServer({ KERNEL: kernelMechanismServer({ inodeUrl: deps.netnsUrl }) }),
  ]);
  let server;
  try {
    server = await serve([url], ep.services, identity.security);
  } catch (err) {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    throw err;
  }

  const nsRegs: Registration<NetworkService>[] = [];
  if (config.registerService) {
    for (const name of config.serviceNames) {
      nsRegs.push(
        startNsRegistration({
          ns: NetworkService.fromPartial({ name, payload: config.payload.toUpperCase() }),
          client: (signal) => nsRegistryClient({ pool, url: config.connectTo, clock, log, signal, tokens: insecure ? undefined : tokens }),
          log,
          clock,
        }),
      );
    }
  }
  const labels = { ...config.labels };
  for (const [k, v] of [['nodeName', config.nodeName], ['podName', config.podName], ['clusterName', config.clusterName]] as const) if (v) labels[k] = v;
  const registration = startRegistration({
    nse: NetworkServiceEndpoint.fromPartial({
      name: config.name,
      networkServiceNames: config.serviceNames,
      networkServiceLabels: Object.fromEntries(config.serviceNames.map((s) => [s, { labels }])),
      url,
    }),
    client: (signal) => nseRegistryClient({ pool, url: config.connectTo, clock, log, signal, tokens: insecure ? undefined : tokens }),
    log,
    clock,
  });
  registration.registered.then(
    () => log.info({ name: config.name, services: config.serviceNames, url }, 'endpoint registered'),
    () => undefined,
  );
  return {
    url,
    registered: registration.registered,
    async stop() {
      await registration.stop({ unregister: config.unregisterItself });
      await Promise.all(nsRegs.map((r) => r.stop({ unregister: false })));
      await server.stop();
      ep.stop();
      pool.close();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    },
  };
}
