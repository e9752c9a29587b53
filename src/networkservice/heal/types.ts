/** Contracts of the heal element: what it observes, and the typed events it publishes. */
import type { Connection } from '../../api/gen/connection.js';

export type { DataPlaneProbe, Observation } from '../../dataplane/probe.js';

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
