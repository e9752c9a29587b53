/**
 * nsc — the client, as upstream cmd-nsc: one connection per NSURL of NSM_NETWORK_SERVICES, with ids
 * `<NSM_NAME>-<i>`, at most NSM_MAX_CONCURRENT_REQUESTS at once. Each is established by establish.ts (adopting what nsmgr still holds, retrying the
 * first Request); then refresh keeps it alive and heal repairs it; on stop it Closes every connection,
 * a few at a time, within a budget that grows with their number (teardown.ts; `stopBudgetMs()` tells the
 * process edge how long to wait).
 * Status (connections and heal events) goes to NSM_STATUS_FILE (status.ts).
 * Chain: update-path → begin → refresh → heal → track → client-info → kernel mechanism → authorize →
 * client-url → connect (to nsmgr); authorize checks the path nsmgr returns (as upstream's client chain,
 * right before connect).
 */
import { Connection, MonitorConnectionDefinition, type MonitorConnectionClient } from '../../api/gen/connection.js';
import { networkServiceChain } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import type { Running } from '../../core/lifecycle.js';
import { forEachLimited } from '../../core/pool.js';
import { ChannelPool, createClient } from '../../core/transport.js';
import type { DataPlaneProbe } from '../../dataplane/probe.js';
import { authorizeClient } from '../../networkservice/authorize/index.js';
import { beginClient } from '../../networkservice/begin/index.js';
import { clientInfo } from '../../networkservice/client-info/index.js';
import { clientUrl } from '../../networkservice/client-url/index.js';
import { connectServer } from '../../networkservice/connect/index.js';
import { healClient, monitorControlPlane, type HealEvent } from '../../networkservice/heal/index.js';
import { kernelMechanismClient } from '../../networkservice/mechanisms/kernel/index.js';
import { refreshClient } from '../../networkservice/refresh/index.js';
import { updatePathClient } from '../../networkservice/update-path/index.js';
import { nscConfig } from './config.js';
import { buildRequest, establish } from './establish.js';
import { StatusBoard } from './status.js';
import { STOP_MARGIN_MS, closeAll, stopBudgetMs } from './teardown.js';
import { withIdentity, type IdentityDeps } from '../identity.js';
import type { Identity } from '../../security/identity.js';

export { nscConfig };
export { buildRequest, stopBudgetMs };
export type { NscStatus } from './status.js';
export type NscConfig = ReturnType<typeof nscConfig.parse>;

export interface RunningNsc extends Running {
  /** Resolves when every connection has been established once. */
  readonly connected: Promise<Connection[]>;
  readonly connections: () => Connection[];
  readonly healEvents: HealEvent[];
}

export interface NscDeps extends IdentityDeps {
  readonly netnsUrl: string;
  readonly probe?: DataPlaneProbe;
  readonly clock?: Clock;
}

export function startNsc(config: NscConfig, deps: NscDeps): Promise<RunningNsc> {
  return withIdentity(config, deps, `nsc/${config.name}`, (identity) => run(config, deps, identity));
}

async function run(config: NscConfig, deps: NscDeps, identity: Identity): Promise<RunningNsc> {
  const clock = deps.clock ?? realClock;
  const log = deps.log;
  const pool = new ChannelPool(identity.security);
  const insecure = identity.insecure;
  const stopping = new AbortController();
  const tokens = identity.tokens;
  const monitor = () => createClient(MonitorConnectionDefinition, pool.get(config.connectTo)) as MonitorConnectionClient;
  const status = new StatusBoard({ name: config.name, file: config.statusFile || undefined, clock, log });

  const heal = healClient(
    { log, clock, probe: deps.probe, controlPlane: monitorControlPlane(monitor, { log }), signal: stopping.signal },
    { interval: config.livenessCheckInterval, confirmations: config.healConfirmations, maxBackoff: config.healMaxBackoff },
  );
  const chain = networkServiceChain('nsc', [
    updatePathClient({ name: config.name }),
    beginClient({ clock }, { eventTimeout: config.requestTimeout }),
    refreshClient({ log, clock }),
    heal,
    status.tracker(),
    clientInfo({ nodeName: config.nodeName, podName: config.podName, clusterName: config.clusterName }),
    kernelMechanismClient({ inodeUrl: deps.netnsUrl }),
    authorizeClient({ pool, clock }, { insecure }),
    clientUrl(config.connectTo),
    connectServer({ pool, tokens }, { dialTimeout: config.dialTimeout }),
  ]);
  void status.consume(heal.events);

  const requests = config.networkServices.map((u, i) => buildRequest(config.name, i, u));
  for (const r of requests) status.connecting(r);
  const establishDeps = { chain, monitor, clock, log, signal: stopping.signal };
  // At most NSM_MAX_CONCURRENT_REQUESTS first Requests in flight: each attempt's timeout starts when it is
  // sent, so a node that admits Requests in order serves every client within its timeout instead of
  // letting them time out in its queue and come back (issue 11: 1000 first Requests at once, no retry).
  const established: Connection[] = [];
  const failures: unknown[] = [];
  const settled = forEachLimited(
    requests.map((r, i) => ({ r, i })),
    config.maxConcurrentRequests,
    async ({ r, i }) => {
      try {
        established[i] = await establish(r, establishDeps, { name: config.name, requestTimeout: config.requestTimeout });
        status.established(established[i]);
      } catch (err) {
        failures.push(err);
      }
    },
  );
  const connected = settled.then(() => (failures.length > 0 ? Promise.reject(failures[0] as Error) : established));
  connected.catch(() => undefined);

  return {
    connected,
    connections: () => status.connections(),
    healEvents: status.healEvents,
    stopBudgetMs: () => stopBudgetMs(requests.length),
    async stop() {
      const deadline = clock.now() + stopBudgetMs(requests.length) - STOP_MARGIN_MS;
      stopping.abort();
      await settled;
      await closeAll(status.connections(), { chain, clock, log }, { requestTimeout: config.requestTimeout, deadline, onClosed: (c) => status.closed(c.id) });
      await status.flush();
      pool.close();
    },
  };
}
