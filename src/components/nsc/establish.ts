/**
 * The NSC's first Request of a connection, as upstream cmd-nsc retries it: Request until one succeeds,
 * each attempt bounded by `requestTimeout`, with heal's backoff (DEFAULT_HEAL_BASE_BACKOFF doubling up
 * to DEFAULT_HEAL_MAX_BACKOFF, jittered to [b/2, b) so clients refused together do not return together)
 * between failures, until `signal` (the NSC's lifetime) aborts.
 *
 * Before it, adoption: one MonitorConnections round trip to nsmgr asks for a connection it still holds
 * for this id with the client's mechanism. Found (the NSC restarted), the request carries that
 * connection, so the Request refreshes it instead of creating a second interface. nsmgr unreachable or
 * silent within DEFAULT_ADOPT_TIMEOUT: nothing to adopt.
 *
 * Also here: the request of the i-th NSURL (`buildRequest`). The Close at stop is in teardown.ts.
 */
import { Connection, type MonitorConnectionClient } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { nsUrlMechanism, type NsUrl } from '../../api/nsurl.js';
import type { NetworkServiceHandler } from '../../core/chain.js';
import type { Clock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { delay, jitteredBackoff } from '../../core/delay.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { linkSignals } from '../../core/signals.js';
import { DEFAULT_HEAL_BASE_BACKOFF, DEFAULT_HEAL_MAX_BACKOFF } from '../../networkservice/heal/index.js';

/** Upper bound (ms) of the adoption round trip (also bounded by the request timeout). */
export const DEFAULT_ADOPT_TIMEOUT = 3000;

export interface EstablishDeps {
  readonly chain: NetworkServiceHandler;
  readonly monitor: () => MonitorConnectionClient;
  readonly clock: Clock;
  readonly log: Logger;
  /** The NSC's lifetime: aborting it ends the retries. */
  readonly signal: AbortSignal;
  /** Source of the retry jitter, in [0, 1) (tests make it fixed). */
  readonly random?: () => number;
}

export interface EstablishOptions {
  /** The client's name (path segment 0). */
  readonly name: string;
  readonly requestTimeout: number;
}

/** The request of connection `<name>-<index>` for one NSURL of NSM_NETWORK_SERVICES. */
export function buildRequest(name: string, index: number, u: NsUrl): NetworkServiceRequest {
  return {
    connection: Connection.fromPartial({
      id: `${name}-${index}`,
      networkService: u.qualifiedNetworkService ?? u.networkService,
      labels: { ...u.labels },
      context: { ipContext: {}, extraContext: {} },
    }),
    mechanismPreferences: [nsUrlMechanism(u)],
  };
}

/** Adopts, then Requests until success; rejects only when `deps.signal` aborts. */
export async function establish(req: NetworkServiceRequest, deps: EstablishDeps, opts: EstablishOptions): Promise<Connection> {
  const { chain, clock, log, signal } = deps;
  await adopt(req, deps, opts);
  for (let attempt = 1; ; attempt++) {
    const link = linkSignals([signal], opts.requestTimeout);
    try {
      const conn = await chain.request(req, newContext({ signal: link.signal, deadline: clock.now() + opts.requestTimeout, log }));
      const ip = conn.context?.ipContext;
      log.info({ connId: conn.id, path: conn.path?.pathSegments.map((s) => s.name), src: ip?.srcIpAddrs, dst: ip?.dstIpAddrs, attempt }, 'connection established');
      return conn;
    } catch (err) {
      if (signal.aborted) throw err;
      const wait = jitteredBackoff(attempt, DEFAULT_HEAL_BASE_BACKOFF, DEFAULT_HEAL_MAX_BACKOFF, deps.random);
      log.warn({ connId: req.connection!.id, attempt, err: errorMessage(err), retryInMs: wait }, 'request failed; retrying');
      await delay(clock, wait, signal);
    } finally {
      link.dispose();
    }
  }
}

/** Replaces `req.connection` with the connection nsmgr still holds for its id, if any. */
export async function adopt(req: NetworkServiceRequest, deps: EstablishDeps, opts: EstablishOptions): Promise<void> {
  const id = req.connection!.id;
  const link = linkSignals([deps.signal], Math.min(opts.requestTimeout, DEFAULT_ADOPT_TIMEOUT));
  try {
    const selector = { pathSegments: [{ id, name: opts.name, token: '', expires: undefined, metrics: {} }], networkServices: [] };
    for await (const ev of deps.monitor().monitorConnections(selector, { signal: link.signal })) {
      const held = Object.values(ev.connections).filter(
        (c) => c.path?.index === 1 && c.path.pathSegments[0]?.id === id && c.mechanism?.type === req.mechanismPreferences[0]?.type,
      );
      for (const c of held) {
        deps.log.info({ connId: id }, 'adopting the connection nsmgr still holds for this client');
        const adopted = Connection.fromPartial({ ...c, id, path: { ...c.path!, index: 0 } });
        adopted.mechanism = undefined;
        req.connection = { ...adopted, labels: { ...req.connection!.labels, ...adopted.labels } };
      }
      break;
    }
  } catch {
    /* nsmgr not reachable yet: nothing to adopt */
  } finally {
    link.dispose();
  }
}
