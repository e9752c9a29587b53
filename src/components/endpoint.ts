/**
 * The endpoint server chain every NetworkService server starts with (nsmgr, forwarder, NSE), as upstream
 * `chains/endpoint`, after a first `validate` (malformed calls answer INVALID_ARGUMENT): update-path → begin →
 * update-token → authorize → timeout → monitor → trim-path → additional elements. `authorize` sits where
 * upstream's does: after update-token (the caller's token is in the previous segment and this hop's is
 * minted for the caller) and before every element that does work, so a refused Request or Close leaves
 * nothing behind (no timer, no monitor event, no IPAM lease, no kernel object, no call downstream). Returns the chain and the hop's MonitorService (served as connection.MonitorConnection).
 */
import { MonitorConnectionDefinition } from '../api/gen/connection.js';
import { NetworkServiceDefinition } from '../api/gen/networkservice.js';
import { networkServiceChain, type NetworkServiceElement, type NetworkServiceHandler } from '../core/chain.js';
import type { Clock } from '../core/clock.js';
import { monitorConnectionService, networkServiceService } from '../core/edge.js';
import type { Logger } from '../core/log.js';
import type { TokenGenerator } from '../core/token.js';
import type { ChannelPool, ServiceRegistration } from '../core/transport.js';
import { authorizeServer } from '../networkservice/authorize/index.js';
import { beginServer } from '../networkservice/begin/index.js';
import { monitorClientFactory } from '../networkservice/connect/index.js';
import { MonitorService } from '../networkservice/monitor/service.js';
import { monitorServer } from '../networkservice/monitor/index.js';
import { timeoutServer } from '../networkservice/timeout/index.js';
import { trimPathServer } from '../networkservice/trim-path/index.js';
import { updatePathServer } from '../networkservice/update-path/index.js';
import { updateTokenServer } from '../networkservice/update-token/index.js';
import { validateServer } from '../networkservice/validate/index.js';

export interface EndpointDeps {
  readonly name: string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly tokens: TokenGenerator;
  readonly pool: ChannelPool;
  /** A plaintext hop (`NSM_INSECURE=true`): no policies (tokens are HS256, callers have no certificate). */
  readonly insecure: boolean;
}

export interface Endpoint {
  readonly handler: NetworkServiceHandler;
  readonly monitor: MonitorService;
  readonly services: ServiceRegistration[];
  /** Ends the monitor streams and forgets every connection (no Close downstream): call after the server stopped. */
  stop(): void;
}

export function endpoint(deps: EndpointDeps, additional: readonly NetworkServiceElement[], options: { requestTimeout?: number } = {}): Endpoint {
  const monitor = new MonitorService({ log: deps.log });
  const begin = beginServer({ clock: deps.clock });
  const elements: NetworkServiceElement[] = [
    validateServer(),
    updatePathServer({ name: deps.name }),
    begin,
    updateTokenServer({ tokens: deps.tokens }),
    authorizeServer({ clock: deps.clock }, { insecure: deps.insecure }),
    timeoutServer({ clock: deps.clock }, { requestTimeout: options.requestTimeout }),
    monitorServer({ monitor, monitorClient: monitorClientFactory({ pool: deps.pool, tokens: deps.tokens }) }),
    trimPathServer(),
    ...additional,
  ];
  const handler = networkServiceChain(`${deps.name}`, elements);
  return {
    handler,
    monitor,
    stop() {
      monitor.stop();
      begin.forgetAll();
    },
    services: [
      { definition: NetworkServiceDefinition, implementation: networkServiceService(handler, deps.log) },
      { definition: MonitorConnectionDefinition, implementation: monitorConnectionService(monitor) },
    ],
  };
}
