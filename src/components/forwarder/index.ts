/**
 * forwarder — the per-node kernel data plane. Registers itself through its nsmgr as an endpoint of
 * service `forwarder` (kept alive), discovers and selects the NSE, selects the kernel mechanism and
 * programs a veth pair between the client's and the endpoint's netns (reconciled on every Request).
 * Chain, as upstream forwarders: endpoint chain → discover → round-robin → mechanisms{KERNEL} →
 * xconnect → endpoint-gone → connect(mechanism-translation, kernel client).
 *
 * At start the data plane takes an inventory of the links nsm-ts owns (alias `nsm-ts:*`): links whose
 * connection is re-requested are adopted as they are; after `NSM_ORPHAN_GRACE` the forwarder asks the data
 * plane to remove the rest, then sweeps for orphans every `NSM_ORPHAN_GC_INTERVAL` (links of connections
 * no longer held, e.g. a removal cut short): the orphan GC (`dataplane/gc.ts`), stopped on stop.
 */
import { NetworkServiceEndpoint } from '../../api/gen/registry.js';
import { admitted, networkServiceAdmission } from '../../core/admission.js';
import { realClock, type Clock } from '../../core/clock.js';
import { registryChain } from '../../core/chain.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { ChannelPool, serve } from '../../core/transport.js';
import { startOrphanGc } from '../../dataplane/gc.js';
import type { DataPlane } from '../../dataplane/types.js';
import { connectServer } from '../../networkservice/connect/index.js';
import { discoverServer } from '../../networkservice/discover/index.js';
import { endpointGoneServer } from '../../networkservice/endpoint-gone/index.js';
import { kernelMechanismClient } from '../../networkservice/mechanisms/kernel/index.js';
import { mechanismsServer } from '../../networkservice/mechanisms/index.js';
import { mechanismTranslationClient } from '../../networkservice/mechanisms/mechanism-translation/index.js';
import { endpointNetnsBinding, netnsBinding, trustNodeAndServer, type NetnsBindingOptions } from '../../networkservice/netns-binding/index.js';
import { processNetns } from '../../core/peer.js';
import { parseUrl } from '../../core/transport.js';
import { roundRobinServer } from '../../networkservice/round-robin/index.js';
import { xconnectServer } from '../../networkservice/xconnect/index.js';
import { passThrough } from '../../core/chain.js';
import { nsConnectClient, nseConnectClient } from '../../registry/connect/index.js';
import { nseRegistryClient, startRegistration } from '../../registry/client/index.js';
import type { Running } from '../../core/lifecycle.js';
import { endpoint } from '../endpoint.js';
import { forwarderConfig } from './config.js';
import { withIdentity, type IdentityDeps } from '../identity.js';
import type { Identity } from '../../security/identity.js';

export { forwarderConfig };
export type ForwarderConfig = ReturnType<typeof forwarderConfig.parse>;

export interface RunningForwarder extends Running {
  readonly addresses: readonly string[];
}

export interface ForwarderDeps extends IdentityDeps {
  readonly log: Logger;
  readonly dataplane: DataPlane;
  readonly clock?: Clock;
  /** Who may name a netns other than its own; default: the forwarder's own netns and its nsmgr's. */
  readonly netnsBinding?: NetnsBindingOptions;
}

export function startForwarder(config: ForwarderConfig, deps: ForwarderDeps): Promise<RunningForwarder> {
  return withIdentity(config, deps, `forwarder/${config.name}`, (identity) => run(config, deps, identity));
}

async function run(config: ForwarderConfig, deps: ForwarderDeps, identity: Identity): Promise<RunningForwarder> {
  const clock = deps.clock ?? realClock;
  const log = deps.log;
  const pool = new ChannelPool(identity.security);
  const insecure = identity.insecure;
  const tokens = identity.tokens;
  const inventory = await deps.dataplane.start().catch((err: unknown) => {
    log.warn({ err: errorMessage(err) }, 'could not list owned links at start');
    return [];
  });
  if (inventory.length > 0) log.info({ links: inventory.length, graceMs: config.orphanGrace }, 'found links owned by nsm-ts; adopting those that are re-requested');

  const nsRegistry = registryChain('forwarder-ns-registry', [nsConnectClient({ pool, url: config.connectTo }, { dialTimeout: config.dialTimeout })]);
  const nseRegistry = registryChain('forwarder-nse-registry', [nseConnectClient({ pool, url: config.connectTo }, { dialTimeout: config.dialTimeout })]);
  const nsmgrUrl = parseUrl(config.connectTo, 'NSM_CONNECT_TO');
  const binding = deps.netnsBinding ?? {
    trusted: trustNodeAndServer({ ownNetns: await processNetns('self'), serverPath: nsmgrUrl.kind === 'unix' ? nsmgrUrl.path : undefined }),
  };
  const ep = endpoint({ name: config.name, log, clock, tokens, pool, insecure }, [
    netnsBinding(binding),
    discoverServer({ nsRegistry, nseRegistry }),
    roundRobinServer(),
    mechanismsServer({ KERNEL: passThrough('kernel') }),
    xconnectServer({ dataplane: deps.dataplane }),
    endpointGoneServer(),
    connectServer({ pool, tokens }, { dialTimeout: config.dialTimeout, clientChain: [mechanismTranslationClient(), ...(binding.trustEndpoints ? [] : [endpointNetnsBinding()]), kernelMechanismClient({}, { generateName: false })], given: ['state', 'begin', 'events'] }),
  ]);
  const server = await serve([config.listenOn], admitted(ep.services, networkServiceAdmission({ name: 'forwarder', log, clock }, config)), identity.security);

  const labels = { ...config.labels };
  if (config.nodeName) labels.nodeName = config.nodeName;
  const registration = startRegistration({
    nse: NetworkServiceEndpoint.fromPartial({ name: config.name, networkServiceNames: [config.nsName], networkServiceLabels: { [config.nsName]: { labels } }, url: config.listenOn }),
    client: (signal) => nseRegistryClient({ pool, url: config.connectTo, clock, log, signal, tokens: insecure ? undefined : tokens }, { dialTimeout: config.dialTimeout }),
    log,
    clock,
  });
  registration.registered.then(
    () => log.info({ name: config.name, service: config.nsName, nsmgr: config.connectTo }, 'registered with nsmgr'),
    () => undefined,
  );

  const gc = startOrphanGc(deps.dataplane, { clock, log }, { grace: config.orphanGrace, interval: config.orphanGcInterval });

  return {
    addresses: server.addresses,
    async stop() {
      await gc.stop();
      await registration.stop({ unregister: true });
      await server.stop();
      ep.stop();
      pool.close();
    },
  };
}
