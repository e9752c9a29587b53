/**
 * The data-plane probe contract used by the client's heal: observations of one connection's data plane
 * from inside the client's netns. Implementations: linux/probe.ts (kernel state + ICMP), fake (sandbox).
 */
import type { Connection } from '../api/gen/connection.js';

/** One observation. `kernel` faults are confirmed by re-checking; `probe` faults already carry the timeout. */
export type Observation = { readonly ok: true } | { readonly ok: false; readonly source: 'kernel' | 'probe'; readonly detail: string };

export interface DataPlaneProbe {
  /** Observations for `conn` until `signal` aborts (faults as they happen). */
  watch(conn: Connection, signal: AbortSignal): AsyncIterable<Observation>;
  /** One immediate check of the kernel state and of probe freshness. */
  check(conn: Connection, signal: AbortSignal): Promise<Observation>;
  /** Restarts the probe grace period (after a successful Request); `graceMs` overrides its length once. */
  reset(conn: Connection, graceMs?: number): void;
}
