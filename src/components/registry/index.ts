/**
 * `nsm registry`: the NetworkService and NetworkServiceEndpoint registries on one gRPC server (plus
 * grpc.health.v1), backed by a `RegistryStore` (memory unless one is given). The chains read like
 * upstream `sdk:pkg/registry/chains/memory` (validate first, then update-path and authorize as upstream's
 * grpcmetadata → updatepath → authorize, before anything is stored); interdomain proxying is not
 * implemented. `stop()` ends open Find watches, stops the server, cancels expiry timers and closes the
 * store if it created it.
 */
import type { NsElement, NseElement } from '../../core/chain.js';
import { registryChain } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import { nseRegistryService, nsRegistryService } from '../../core/edge.js';
import { serve } from '../../core/transport.js';
import { NetworkServiceEndpointRegistryDefinition, NetworkServiceRegistryDefinition } from '../../api/gen/registry.js';
import { authorizeRegistryServer } from '../../registry/authorize/index.js';
import { expireNseServer } from '../../registry/expire/index.js';
import { updatePathRegistryServer } from '../../registry/update-path/index.js';
import { memoryRegistryStore } from '../../registry/memory/index.js';
import { setPayloadNsServer } from '../../registry/set-payload/index.js';
import { setRegistrationTimeNseServer } from '../../registry/set-registration-time/index.js';
import type { RegistryStore } from '../../registry/store.js';
import { storeNseServer, storeNsServer } from '../../registry/store/index.js';
import { validateNseServer, validateNsServer } from '../../registry/validate/index.js';
import type { RegistryConfig } from './config.js';
import { withIdentity, type IdentityDeps } from '../identity.js';
import type { Identity } from '../../security/identity.js';

export { registryConfig, type RegistryConfig } from './config.js';

export interface RunningRegistry {
  stop(): Promise<void>;
  /** Actual listen addresses (tcp port 0 resolved). */
  readonly addresses: string[];
}

export interface RegistryDeps extends IdentityDeps {
  readonly store?: RegistryStore;
  readonly clock?: Clock;
}

/** The registry settings `startRegistry` reads (both registries share them). */
export type RegistryStartConfig = Pick<RegistryConfig, 'listenOn' | 'expirePeriod' | 'insecure' | 'spiffeEndpointSocket' | 'maxTokenLifetime'>;

export function startRegistry(config: RegistryStartConfig, deps: RegistryDeps): Promise<RunningRegistry> {
  return withIdentity(config, deps, 'registry', (identity) => run(config, deps, identity));
}

async function run(config: RegistryStartConfig, deps: RegistryDeps, identity: Identity): Promise<RunningRegistry> {
  const log = deps.log;
  const clock = deps.clock ?? realClock;
  const store = deps.store ?? memoryRegistryStore();
  const ownStore = deps.store === undefined;

  const nsStore = storeNsServer({ store });
  const nseStore = storeNseServer({ store });
  const expire = expireNseServer({ clock, log }, { expirePeriod: config.expirePeriod });

  const { insecure, tokens } = identity;
  const nsChain: NsElement[] = [
    validateNsServer(),
    updatePathRegistryServer({ tokens }, { insecure }),
    authorizeRegistryServer({ clock, registrants: async (name, signal) => (await store.ns.get(name, { signal }))?.pathIds }, { insecure }),
    setPayloadNsServer(),
    nsStore,
  ];
  const nseChain: NseElement[] = [
    validateNseServer(),
    updatePathRegistryServer({ tokens }, { insecure }),
    authorizeRegistryServer({ clock, registrants: async (name, signal) => (await store.nse.get(name, { signal }))?.pathIds }, { insecure }),
    expire,
    setRegistrationTimeNseServer({ clock }),
    nseStore,
  ];

  let server;
  try {
    server = await serve(config.listenOn, [
      { definition: NetworkServiceRegistryDefinition, implementation: nsRegistryService(registryChain('registry-ns', nsChain), log) },
      { definition: NetworkServiceEndpointRegistryDefinition, implementation: nseRegistryService(registryChain('registry-nse', nseChain), log) },
    ], identity.security);
  } catch (err) {
    expire.stop();
    if (ownStore) await store.close();
    throw err;
  }
  log.info({ addresses: server.addresses, expirePeriodMs: config.expirePeriod }, 'registry serving');

  let stopped: Promise<void> | undefined;
  return {
    addresses: [...server.addresses],
    stop() {
      stopped ??= (async () => {
        server.setServing(false);
        nsStore.stop();
        nseStore.stop();
        await server.stop();
        expire.stop();
        if (ownStore) await store.close();
        log.info('registry stopped');
      })();
      return stopped;
    },
  };
}
