/**
 * nsmgr's registry server chains (what NSEs and forwarders register through, and what nsmgr's own
 * discovery asks): the ordered element lists of upstream `sdk/pkg/networkservice/chains/nsmgr/server.go`
 * (registry part), without the grpcmetadata/updatepath/authorize/begin/recvfd/sendfd elements nsm-ts
 * does not use:
 *
 *   NSE: validate → clientinfo → expire (cap 1 min) → localbypass → connect(NSM_REGISTRY_URL)
 *   NS:  validate → connect(NSM_REGISTRY_URL)
 *
 * `validate` comes first so a malformed call is INVALID_ARGUMENT at nsmgr itself, never forwarded.
 */
import { registryChain, type NsElement, type NseElement, type NseHandler, type NsHandler } from '../core/chain.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { ChannelPool } from '../core/transport.js';
import { clientInfoServer } from './client-info/index.js';
import { nsConnectServer, nseConnectServer } from './connect/index.js';
import { expireCapServer } from './expire-cap/index.js';
import { localBypassServer } from './local-bypass/index.js';
import { validateNseServer, validateNsServer } from './validate/index.js';

export interface NsmgrRegistryDeps {
  /** `NSM_REGISTRY_URL`. */
  readonly registryUrl: string;
  readonly pool: ChannelPool;
  /** The nsmgr's public URL registered for its NSEs; without one the NSEs' own URLs are registered. */
  readonly nsmgrUrl?: string;
  /** `nodeName`, `podName`, `clusterName` of this nsmgr. */
  readonly labels: Readonly<Record<string, string>>;
  readonly log: Logger;
  readonly clock?: Clock;
}

export interface NsmgrRegistryOptions {
  /** `NSM_DIAL_TIMEOUT` (nsmgr default 750 ms). */
  readonly dialTimeout?: number;
  /** NSE registration expiry cap (default 1 min). */
  readonly maxExpiration?: number;
}

export function nsmgrNseElements(deps: NsmgrRegistryDeps, options: NsmgrRegistryOptions = {}): NseElement[] {
  return [
    validateNseServer(),
    clientInfoServer({ labels: deps.labels }),
    expireCapServer({ clock: deps.clock }, { maxExpiration: options.maxExpiration }),
    localBypassServer({ nsmgrUrl: deps.nsmgrUrl }),
    nseConnectServer({ pool: deps.pool, url: deps.registryUrl, clock: deps.clock }, { dialTimeout: options.dialTimeout }),
  ];
}

export function nsmgrNsElements(deps: NsmgrRegistryDeps, options: NsmgrRegistryOptions = {}): NsElement[] {
  return [validateNsServer(), nsConnectServer({ pool: deps.pool, url: deps.registryUrl, clock: deps.clock }, { dialTimeout: options.dialTimeout })];
}

export function nsmgrRegistryChains(deps: NsmgrRegistryDeps, options: NsmgrRegistryOptions = {}): { ns: NsHandler; nse: NseHandler } {
  return {
    ns: registryChain('nsmgr-ns-registry', nsmgrNsElements(deps, options)),
    nse: registryChain('nsmgr-nse-registry', nsmgrNseElements(deps, options)),
  };
}
