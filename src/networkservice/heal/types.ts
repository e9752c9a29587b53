/** Contracts of the heal element: what it observes, and the typed events it publishes. */
import type { Connection } from '../../api/gen/connection.js';

/** One observation of a connection's data plane. `kernel` faults are confirmed by re-checking; `probe` faults already carry the timeout. */
export type Observation = { readonly ok: true } | { readonly ok: false; readonly source: 'kernel' | 'probe'; readonly detail: string };

export interface DataPlaneProbe {
  /** Observations for `conn` until `signal` aborts (faults as they happen; oks when a fault clears). */
  watch(conn: Connection, signal: AbortSignal): AsyncIterable<Observation>;
  /** One immediate check of the kernel state and of probe freshness. */
  check(conn: Connection, signal: AbortSignal): Promise<Observation>;
  /** Restart the probe grace period (after a successful Request). */
  reset(conn: Connection): void;
}

/** Control-plane watch: yields when the connection is reported DOWN/deleted or the monitor stream breaks. */
export interface ControlPlaneWatch {
  watch(conn: Connection, signal: AbortSignal): AsyncIterable<{ readonly reason: string }>;
}

export type HealCause = 'control-plane' | 'data-plane';
export type HealAction = 'repair' | 'reselect';

export type HealEvent =
  | { readonly type: 'suspect'; readonly connId: string; readonly at: number; readonly detail: string }
  | { readonly type: 'cleared'; readonly connId: string; readonly at: number; readonly detail: string }
  | { readonly type: 'detected'; readonly connId: string; readonly at: number; readonly cause: HealCause; readonly detail: string }
  | { readonly type: 'repairing'; readonly connId: string; readonly at: number; readonly attempt: number }
  | { readonly type: 'reselecting'; readonly connId: string; readonly at: number; readonly attempt: number; readonly why: string }
  | {
      readonly type: 'healed';
      readonly connId: string;
      readonly at: number;
      readonly action: HealAction;
      readonly cause: HealCause;
      readonly detectedAt: number;
      readonly ms: number;
      readonly attempts: number;
    }
  | { readonly type: 'failed'; readonly connId: string; readonly at: number; readonly action: HealAction; readonly attempt: number; readonly error: string; readonly retryInMs: number };

export type HealState = 'watching' | 'suspect' | 'repairing' | 'reselecting' | 'backoff' | 'closed';
