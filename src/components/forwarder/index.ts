/**
 * forwarder — the per-node kernel data plane. Registers itself through its nsmgr as an endpoint of
 * service `forwarder` (kept alive), discovers and selects the NSE, selects the mechanism and programs
 * the kernel (reconciled on every Request): a veth pair between the client's and the endpoint's netns
 * when both are on this node; across nodes, one end of a VXLAN (payload ETHERNET) or WireGuard (payload
 * IP) tunnel between this node's tunnel IP (`NSM_TUNNEL_IP`, which must be an address of this netns;
 * empty = no remote mechanisms) and the other node's — the client's end on the client's node, the
 * endpoint's end on the endpoint's node.
 * Chain, as upstream forwarders: endpoint chain → discover → round-robin → mechanisms{KERNEL, VXLAN,
 * WIREGUARD} → xconnect → endpoint-gone → connect(mechanism-translation, mechanisms{kernel, vxlan,
 * wireguard clients}, filter-mechanisms).
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
import type { DataPlane, OwnedLink } from '../../dataplane/types.js';
import { WIREGUARD_DEFAULT_PORT } from '../../api/constants.js';
import { connectServer } from '../../networkservice/connect/index.js';
import { discoverServer } from '../../networkservice/discover/index.js';
import { endpointGoneServer } from '../../networkservice/endpoint-gone/index.js';
import { filterMechanismsClient } from '../../networkservice/mechanisms/filter-mechanisms/index.js';
import { kernelMechanismClient } from '../../networkservice/mechanisms/kernel/index.js';
import { mechanismsClient, mechanismsServer, type MechanismElements } from '../../networkservice/mechanisms/index.js';
import { vxlanClient, vxlanServer } from '../../networkservice/mechanisms/vxlan/index.js';
import { PortPool, wireguardClient, wireguardServer } from '../../networkservice/mechanisms/wireguard/index.js';
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
import { checkTunnelIp, isLocalAddress } from './tunnel-ip.js';
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
  /** Whether an IP is an address of this node (NSM_TUNNEL_IP's check); default: it can be bound here. */
  readonly isLocalAddress?: (ip: string) => Promise<boolean>;
}

/** The mechanism elements of both sides: KERNEL always; VXLAN and WIREGUARD with a tunnel IP. */
function mechanismElements(config: ForwarderConfig, dataplane: DataPlane, inventory: readonly OwnedLink[]): { server: MechanismElements; client: MechanismElements } {
  const kernel = { server: { KERNEL: passThrough('kernel') }, client: { KERNEL: kernelMechanismClient({}, { generateName: false }) } };
  if (!config.tunnelIp) return kernel;
  const tunnelIp = config.tunnelIp;
  const ports = new PortPool(WIREGUARD_DEFAULT_PORT, config.wireguardPorts);
  const reservedVnis = inventory.flatMap((l) => (l.tunnel?.kind === 'vxlan' && l.tunnel.vni ? [l.tunnel.vni] : []));
  return {
    server: { ...kernel.server, VXLAN: vxlanServer({ tunnelIp }, { reservedVnis }), WIREGUARD: wireguardServer({ tunnelIp, dataplane, ports }) },
    client: { ...kernel.client, VXLAN: vxlanClient({ tunnelIp }), WIREGUARD: wireguardClient({ tunnelIp, dataplane, ports }) },
  };
}

export function startForwarder(config: ForwarderConfig, deps: ForwarderDeps): Promise<RunningForwarder> {
  return withIdentity(config, deps, `forwarder/${config.name}`, (identity) => run(config, deps, identity));
}

async function run(config: ForwarderConfig, deps: ForwarderDeps, identity: Identity): Promise<RunningForwarder> {
  const clock = deps.clock ?? realClock;
  const log = deps.log;
  await checkTunnelIp(config.tunnelIp, deps.isLocalAddress ?? isLocalAddress);
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
  const mechanisms = mechanismElements(config, deps.dataplane, inventory);
  const clientChain = [
    mechanismTranslationClient(),
    ...(binding.trustEndpoints ? [] : [endpointNetnsBinding()]),
    mechanismsClient(mechanisms.client),
    filterMechanismsClient(),
  ];
  const ep = endpoint({ name: config.name, log, clock, tokens, pool, insecure }, [
    netnsBinding(binding),
    discoverServer({ nsRegistry, nseRegistry }),
    roundRobinServer(),
    mechanismsServer(mechanisms.server),
    xconnectServer({ dataplane: deps.dataplane }),
    endpointGoneServer(),
    connectServer({ pool, tokens }, { dialTimeout: config.dialTimeout, clientChain, given: ['state', 'begin', 'events'] }),
  ]);
  if (config.tunnelIp) log.info({ tunnelIp: config.tunnelIp, wireguardPorts: config.wireguardPorts }, 'remote mechanisms VXLAN and WIREGUARD offered');
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
