/**
 * nsmgr's registry server chains (what NSEs and forwarders register through, and what nsmgr's own
 * discovery asks): the ordered element lists of upstream `sdk/pkg/networkservice/chains/nsmgr/server.go`
 * (registry part), without the begin/recvfd/sendfd elements nsm-ts does not use:
 *
 *   NSE: validate → update-path → authorize → clientinfo → expire (cap 1 min) → localbypass → connect(NSM_REGISTRY_URL)
 *   NS:  validate → update-path → authorize → connect(NSM_REGISTRY_URL)
 *
 * `validate` comes first so a malformed call is INVALID_ARGUMENT at nsmgr itself, never forwarded.
 * update-path (upstream grpcmetadata + updatepath) and authorize come next, as upstream's: the path is
 * this hop's and judged (only an endpoint's registrant may refresh or unregister it) before anything is
 * changed or forwarded; connect sends the path and a token for the registry on, and brings the
 * registry's answered path back for the response header. On an insecure hop both pass through.
 */
import { registryChain, type NsElement, type NseElement, type NseHandler, type NsHandler } from '../core/chain.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/log.js';
import type { TokenGenerator } from '../core/token.js';
import type { ChannelPool } from '../core/transport.js';
import { authorizeRegistryServer } from './authorize/index.js';
import { updatePathRegistryServer } from './update-path/index.js';
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
  /** A plaintext hop (`NSM_INSECURE=true`): no path, no policies. */
  readonly insecure: boolean;
  /** This nsmgr's path tokens; required on a secure hop. */
  readonly tokens?: TokenGenerator;
}

export interface NsmgrRegistryOptions {
  /** `NSM_DIAL_TIMEOUT` (nsmgr default 750 ms). */
  readonly dialTimeout?: number;
  /** NSE registration expiry cap (default 1 min). */
  readonly maxExpiration?: number;
}

/** The tokens `connect` sends to the registry: only on a secure hop. */
function forwardTokens(deps: NsmgrRegistryDeps): TokenGenerator | undefined {
  return deps.insecure ? undefined : deps.tokens;
}

export function nsmgrNseElements(deps: NsmgrRegistryDeps, options: NsmgrRegistryOptions = {}): NseElement[] {
  return [
    validateNseServer(),
    updatePathRegistryServer({ tokens: deps.tokens }, { insecure: deps.insecure }),
    authorizeRegistryServer({ clock: deps.clock }, { insecure: deps.insecure }),
    clientInfoServer({ labels: deps.labels }),
    expireCapServer({ clock: deps.clock }, { maxExpiration: options.maxExpiration }),
    localBypassServer({ nsmgrUrl: deps.nsmgrUrl }),
    nseConnectServer({ pool: deps.pool, url: deps.registryUrl, clock: deps.clock, tokens: forwardTokens(deps) }, { dialTimeout: options.dialTimeout }),
  ];
}

export function nsmgrNsElements(deps: NsmgrRegistryDeps, options: NsmgrRegistryOptions = {}): NsElement[] {
  return [
    validateNsServer(),
    updatePathRegistryServer({ tokens: deps.tokens }, { insecure: deps.insecure }),
    authorizeRegistryServer({ clock: deps.clock }, { insecure: deps.insecure }),
    nsConnectServer({ pool: deps.pool, url: deps.registryUrl, clock: deps.clock, tokens: forwardTokens(deps) }, { dialTimeout: options.dialTimeout }),
  ];
}

export function nsmgrRegistryChains(deps: NsmgrRegistryDeps, options: NsmgrRegistryOptions = {}): { ns: NsHandler; nse: NseHandler } {
  return {
    ns: registryChain('nsmgr-ns-registry', nsmgrNsElements(deps, options)),
    nse: registryChain('nsmgr-nse-registry', nsmgrNseElements(deps, options)),
  };
}
