/**
 * nsmgr — the per-node manager. Serves NetworkService and MonitorConnection to local clients, and both
 * registries (proxied to NSM_REGISTRY_URL with client-info, expiry cap and local bypass). Its chain, as
 * upstream cmd-nsmgr: endpoint chain → client-info → discover-forwarder → connect (to the forwarder).
 * No heal, no refresh: the client heals.
 *
 * Requests and Closes from its clients pass an admission first (NSM_MAX_CONCURRENT_REQUESTS at once, the
 * rest waiting in arrival order until their caller gives up, see core/admission.ts); the registry services
 * do not, so registrations and their refreshes are never queued behind Requests.
 */
import { NetworkServiceEndpointRegistryDefinition, NetworkServiceRegistryDefinition } from '../../api/gen/registry.js';
import { admitted, networkServiceAdmission } from '../../core/admission.js';
import { realClock, type Clock } from '../../core/clock.js';
import { nseRegistryService, nsRegistryService } from '../../core/edge.js';
import type { Logger } from '../../core/log.js';
import { ChannelPool, serve } from '../../core/transport.js';
import { clientInfo } from '../../networkservice/client-info/index.js';
import { connectServer } from '../../networkservice/connect/index.js';
import { discoverForwarderServer } from '../../networkservice/discover-forwarder/index.js';
import { netnsBinding, type NetnsBindingOptions } from '../../networkservice/netns-binding/index.js';
import { nsmgrRegistryChains } from '../../registry/nsmgr-chain.js';
import { endpoint } from '../endpoint.js';
import type { Running } from '../../core/lifecycle.js';
import { nsmgrConfig } from './config.js';
import { withIdentity, type IdentityDeps } from '../identity.js';
import type { Identity } from '../../security/identity.js';

export { nsmgrConfig };
export type NsmgrConfig = ReturnType<typeof nsmgrConfig.parse>;

export interface RunningNsmgr extends Running {
  readonly addresses: readonly string[];
}

export interface NsmgrDeps extends IdentityDeps {
  readonly log: Logger;
  readonly clock?: Clock;
  /** Who may name a netns other than its own; default: nobody (each client only its own). */
  readonly netnsBinding?: NetnsBindingOptions;
}

export function startNsmgr(config: NsmgrConfig, deps: NsmgrDeps): Promise<RunningNsmgr> {
  return withIdentity(config, deps, `nsmgr/${config.name}`, (identity) => run(config, deps, identity));
}

async function run(config: NsmgrConfig, deps: NsmgrDeps, identity: Identity): Promise<RunningNsmgr> {
  const clock = deps.clock ?? realClock;
  const log = deps.log;
  const pool = new ChannelPool(identity.security);
  const insecure = identity.insecure;
  const tokens = identity.tokens;
  const labels: Record<string, string> = {};
  if (config.nodeName) labels.nodeName = config.nodeName;
  if (config.podName) labels.podName = config.podName;
  if (config.clusterName) labels.clusterName = config.clusterName;
  const tcp = config.listenOn.find((u) => u.startsWith('tcp://'));
  const nsmgrUrl = tcp?.replace('tcp://:', 'tcp://127.0.0.1:').replace('tcp://0.0.0.0:', 'tcp://127.0.0.1:');

  const registry = nsmgrRegistryChains({ registryUrl: config.registryUrl, pool, nsmgrUrl, labels, log, clock, insecure, tokens }, { dialTimeout: config.dialTimeout });
  const ep = endpoint({ name: config.name, log, clock, tokens, pool, insecure }, [
    netnsBinding(deps.netnsBinding),
    clientInfo({ nodeName: config.nodeName, podName: config.podName, clusterName: config.clusterName }),
    discoverForwarderServer({ nsRegistry: registry.ns, nseRegistry: registry.nse }, { forwarderServiceName: config.forwarderServiceName, nsmgrUrl }),
    connectServer({ pool, tokens }, { dialTimeout: config.dialTimeout }),
  ]);
  const admission = networkServiceAdmission({ name: 'nsmgr', log, clock }, config);
  const server = await serve(config.listenOn, [
    ...admitted(ep.services, admission),
    { definition: NetworkServiceRegistryDefinition, implementation: nsRegistryService(registry.ns, log) },
    { definition: NetworkServiceEndpointRegistryDefinition, implementation: nseRegistryService(registry.nse, log) },
  ], identity.security);
  log.info({ listen: server.addresses, registry: config.registryUrl, maxConcurrentRequests: config.maxConcurrentRequests }, 'nsmgr serving');
  return {
    addresses: server.addresses,
    async stop() {
      await server.stop();
      ep.stop();
      pool.close();
    },
  };
}
