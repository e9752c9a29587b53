/**
 * heal (client) — keeps a client connection working without outside help. After the first successful
 * Request it starts one {@link HealMachine} per connection (background work tied to the connection's
 * lifetime; it stops on Close). Later successful Requests (refresh, heal, user) only update the machine.
 * The machine observes the control plane (nsmgr monitor stream) and the data plane (a DataPlaneProbe:
 * kernel state of the client's interface plus probes through the connection), and repairs in place or
 * reselects by re-entering the chain from `begin` (see machine.ts for the exact rule).
 *
 * Its typed events (every connection's suspect/detected/…/healed) come out of `events`, one bounded
 * AsyncIterable (the oldest are dropped when nobody keeps up), which ends when `deps.signal` aborts.
 *
 * Placement: client chain, after `begin` (needs its event factory) and `refresh`. Mirrors upstream
 * sdk `pkg/networkservice/common/heal`, with confirmation, escalation and backoff added.
 */
import type { NetworkServiceElement } from '../../core/chain.js';
import { realClock, type Clock } from '../../core/clock.js';
import type { Logger } from '../../core/log.js';
import { AsyncQueue } from '../../core/queue.js';
import { StateKey } from '../../core/state.js';
import { HealMachine, type HealOptions } from './machine.js';
import type { DataPlaneProbe } from '../../dataplane/probe.js';
import type { ControlPlaneWatch, HealEvent } from './types.js';

export * from './types.js';
export { HealMachine } from './machine.js';
export { monitorControlPlane } from './control-plane.js';
export { decide, type Fault, type Attempts, type Decision } from './decide.js';

export const DEFAULT_HEAL_INTERVAL = 200;
export const DEFAULT_HEAL_CONFIRMATIONS = 3;
export const DEFAULT_HEAL_MAX_BACKOFF = 5000;
export const DEFAULT_HEAL_BASE_BACKOFF = 100;
export const DEFAULT_HEAL_STABLE_WINDOW = 5000;
export const DEFAULT_HEAL_RESELECT_GRACE = 3000;
export const DEFAULT_HEAL_EVENT_LIMIT = 256;

export const HEAL_MACHINE = new StateKey<HealMachine>('heal/machine');

export interface HealDeps {
  readonly log: Logger;
  readonly clock?: Clock;
  readonly probe?: DataPlaneProbe;
  readonly controlPlane?: ControlPlaneWatch;
  /** Ends the `events` stream (the component's lifetime). */
  readonly signal?: AbortSignal;
}

export interface HealClientOptions extends Partial<HealOptions> {
  /** Events buffered for a slow reader of `events` before the oldest are dropped. */
  readonly eventLimit?: number;
}

export interface HealClient extends NetworkServiceElement {
  /** The typed heal events of every connection, in order; one reader. */
  readonly events: AsyncIterable<HealEvent>;
}

export function healClient(deps: HealDeps, options: HealClientOptions = {}): HealClient {
  const opts: HealOptions = Object.freeze({
    interval: options.interval ?? DEFAULT_HEAL_INTERVAL,
    confirmations: options.confirmations ?? DEFAULT_HEAL_CONFIRMATIONS,
    maxBackoff: options.maxBackoff ?? DEFAULT_HEAL_MAX_BACKOFF,
    baseBackoff: options.baseBackoff ?? DEFAULT_HEAL_BASE_BACKOFF,
    stableWindow: options.stableWindow ?? DEFAULT_HEAL_STABLE_WINDOW,
    reselectGrace: options.reselectGrace ?? DEFAULT_HEAL_RESELECT_GRACE,
  });
  const log = deps.log.child({ element: 'heal' });
  const events = new AsyncQueue<HealEvent>({
    limit: options.eventLimit ?? DEFAULT_HEAL_EVENT_LIMIT,
    overflow: 'drop-oldest',
    signal: deps.signal,
    name: 'heal events',
  });
  return {
    name: 'heal',
    requires: ['begin'],
    events,
    async request(req, ctx, next) {
      const conn = await next.request(req, ctx);
      const existing = ctx.state.get(HEAL_MACHINE);
      if (existing && existing.state !== 'closed') {
        existing.updated(conn);
        return conn;
      }
      if (!ctx.events) return conn;
      const machine = new HealMachine(
        { clock: deps.clock ?? realClock, log: log.child({ connId: conn.id }), events: ctx.events, probe: deps.probe, controlPlane: deps.controlPlane, sink: events },
        opts,
        conn,
      );
      ctx.state.set(HEAL_MACHINE, machine);
      void machine.run();
      return conn;
    },
    close(conn, ctx, next) {
      ctx.state.get(HEAL_MACHINE)?.closing();
      return next.close(conn, ctx);
    },
  };
}
