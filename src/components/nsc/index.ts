/**
 * nsc — the client, as upstream cmd-nsc: one connection per NSURL of NSM_NETWORK_SERVICES, with ids
 * `<NSM_NAME>-<i>`. At start it adopts a connection its nsmgr still holds for that id (a restarted NSC
 * refreshes instead of creating a second interface); it retries the first Request until it succeeds
 * (each attempt bounded by NSM_REQUEST_TIMEOUT); it refreshes before tokens expire and heals on its own;
 * on SIGTERM/SIGINT it Closes every connection.
 * Chain: update-path → begin → refresh → heal → client-info → kernel mechanism → connect (to nsmgr).
 */
import { writeFileSync, renameSync } from 'node:fs';
import { createClient } from 'nice-grpc';
import { MonitorConnectionDefinition, type Connection, type MonitorConnectionClient } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { Connection as ConnectionFns } from '../../api/gen/connection.js';
import { nsUrlMechanism, type NsUrl } from '../../api/nsurl.js';
import { networkServiceChain, type NetworkServiceHandler } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { backoff, delay } from '../../core/delay.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { linkSignals } from '../../core/signals.js';
import { hs256TokenGenerator } from '../../core/token.js';
import { ChannelPool } from '../../core/transport.js';
import type { DataPlaneProbe } from '../../dataplane/probe.js';
import { beginClient } from '../../networkservice/begin/index.js';
import { clientInfo } from '../../networkservice/client-info/index.js';
import { clientUrl } from '../../networkservice/client-url/index.js';
import { connectServer } from '../../networkservice/connect/index.js';
import { healClient, monitorControlPlane, type HealEvent } from '../../networkservice/heal/index.js';
import { kernelMechanismClient } from '../../networkservice/mechanisms/kernel/index.js';
import { refreshClient } from '../../networkservice/refresh/index.js';
import { updatePathClient } from '../../networkservice/update-path/index.js';
import type { Running } from '../../core/lifecycle.js';
import { nscConfig } from './config.js';

export { nscConfig };
export type NscConfig = ReturnType<typeof nscConfig.parse>;

export interface NscStatus {
  name: string;
  connections: Array<{ id: string; networkService: string; state: 'connecting' | 'connected' | 'healing'; connection?: unknown }>;
  heal: { events: number; healed: number; last?: HealEvent; lastHeal?: HealEvent };
  updatedAt: string;
}

export interface RunningNsc extends Running {
  /** Resolves when every connection has been established once. */
  readonly connected: Promise<Connection[]>;
  readonly connections: () => Connection[];
  readonly healEvents: HealEvent[];
}

export async function startNsc(
  config: NscConfig,
  deps: { log: Logger; netnsUrl: string; probe?: DataPlaneProbe; clock?: Clock; statusFile?: string },
): Promise<RunningNsc> {
  const clock = deps.clock ?? realClock;
  const log = deps.log;
  const pool = new ChannelPool();
  const stopping = new AbortController();
  const tokens = hs256TokenGenerator({ maxTokenLifetime: config.maxTokenLifetime, subject: `nsm-ts/nsc/${config.name}` });
  const monitorClient = (): MonitorConnectionClient =>
    createClient(MonitorConnectionDefinition, pool.get(config.connectTo)) as MonitorConnectionClient;

  const healEvents: HealEvent[] = [];
  const states = new Map<string, NscStatus['connections'][number]>();
  const current = new Map<string, Connection>();
  const writeStatus = () => {
    if (!deps.statusFile) return;
    const healed = healEvents.filter((e) => e.type === 'healed');
    const status: NscStatus = {
      name: config.name,
      connections: [...states.values()].map((s) => ({ ...s, connection: current.get(s.id) ? ConnectionFns.toJSON(current.get(s.id)!) : undefined })),
      heal: { events: healEvents.length, healed: healed.length, last: healEvents.at(-1), lastHeal: healed.at(-1) },
      updatedAt: new Date().toISOString(),
    };
    try {
      writeFileSync(`${deps.statusFile}.tmp`, JSON.stringify(status, null, 2));
      renameSync(`${deps.statusFile}.tmp`, deps.statusFile);
    } catch (err) {
      log.warn({ err: errorMessage(err), file: deps.statusFile }, 'cannot write status file');
    }
  };
  const publish = (e: HealEvent) => {
    healEvents.push(e);
    if (healEvents.length > 200) healEvents.splice(0, healEvents.length - 200);
    const s = states.get(e.connId);
    if (s) s.state = e.type === 'healed' ? 'connected' : e.type === 'suspect' || e.type === 'cleared' ? s.state : 'healing';
    writeStatus();
  };

  const heal = healClient(
    { log, clock, probe: deps.probe, controlPlane: monitorControlPlane(monitorClient), publish },
    { interval: config.livenessCheckInterval, confirmations: config.healConfirmations, maxBackoff: config.healMaxBackoff },
  );
  const chain: NetworkServiceHandler = networkServiceChain('nsc', [
    updatePathClient({ name: config.name }),
    beginClient({}, { eventTimeout: config.requestTimeout }),
    refreshClient({ log, clock }),
    heal,
    {
      name: 'track',
      request: async (req, ctx, next) => {
        const conn = await next.request(req, ctx);
        current.set(conn.id, conn);
        writeStatus();
        return conn;
      },
      close: (conn, ctx, next) => next.close(conn, ctx),
    },
    clientInfo({ nodeName: config.nodeName, podName: config.podName, clusterName: config.clusterName }),
    kernelMechanismClient({ inodeUrl: deps.netnsUrl }),
    clientUrl(config.connectTo),
    connectServer({ pool, tokens }, { dialTimeout: config.dialTimeout }),
  ]);

  const requests = config.networkServices.map((u, i) => buildRequest(config.name, i, u));
  for (const r of requests) states.set(r.connection!.id, { id: r.connection!.id, networkService: r.connection!.networkService, state: 'connecting' });

  async function adopt(req: NetworkServiceRequest): Promise<void> {
    const id = req.connection!.id;
    const link = linkSignals([stopping.signal], Math.min(config.requestTimeout, 3000));
    try {
      const sel = { pathSegments: [{ id, name: config.name, token: '', expires: undefined, metrics: {} }], networkServices: [] };
      for await (const ev of monitorClient().monitorConnections(sel, { signal: link.signal })) {
        for (const c of Object.values(ev.connections)) {
          if (c.path?.index === 1 && c.path.pathSegments[0]?.id === id && c.mechanism?.type === req.mechanismPreferences[0]?.type) {
            log.info({ connId: id }, 'adopting the connection nsmgr still holds for this client');
            const adopted = ConnectionFns.fromPartial({ ...c, id, path: { ...c.path, index: 0 } });
            adopted.mechanism = undefined;
            req.connection = { ...adopted, labels: { ...req.connection!.labels, ...adopted.labels } };
          }
        }
        break;
      }
    } catch {
      /* nsmgr not reachable yet: nothing to adopt */
    } finally {
      link.dispose();
    }
  }

  async function establish(req: NetworkServiceRequest): Promise<Connection> {
    await adopt(req);
    for (let attempt = 1; ; attempt++) {
      const link = linkSignals([stopping.signal], config.requestTimeout);
      try {
        const conn = await chain.request(req, newContext({ signal: link.signal, deadline: Date.now() + config.requestTimeout, log }));
        states.get(conn.id)!.state = 'connected';
        current.set(conn.id, conn);
        writeStatus();
        const ip = conn.context?.ipContext;
        log.info({ connId: conn.id, path: conn.path?.pathSegments.map((s) => s.name), src: ip?.srcIpAddrs, dst: ip?.dstIpAddrs, attempt }, 'connection established');
        return conn;
      } catch (err) {
        if (stopping.signal.aborted) throw err;
        const wait = backoff(attempt, 200, 5000);
        log.warn({ connId: req.connection!.id, attempt, err: errorMessage(err), retryInMs: wait }, 'request failed; retrying');
        await delay(clock, wait, stopping.signal);
      } finally {
        link.dispose();
      }
    }
  }

  const connected = Promise.all(requests.map((r) => establish(r)));
  connected.catch(() => undefined);
  return {
    connected,
    connections: () => [...current.values()],
    healEvents,
    async stop() {
      stopping.abort();
      await connected.catch(() => undefined);
      await Promise.all(
        [...current.values()].map(async (conn) => {
          const link = linkSignals([], config.requestTimeout);
          try {
            await chain.close(conn, newContext({ signal: link.signal, log }));
            log.info({ connId: conn.id }, 'connection closed');
          } catch (err) {
            log.warn({ connId: conn.id, err: errorMessage(err) }, 'close failed');
          } finally {
            link.dispose();
          }
        }),
      );
      current.clear();
      writeStatus();
      pool.close();
    },
  };
}

export function buildRequest(name: string, index: number, u: NsUrl): NetworkServiceRequest {
  return {
    connection: ConnectionFns.fromPartial({
      id: `${name}-${index}`,
      networkService: u.qualifiedNetworkService ?? u.networkService,
      labels: { ...u.labels },
      context: { ipContext: {}, extraContext: {} },
    }),
    mechanismPreferences: [nsUrlMechanism(u)],
  };
}
