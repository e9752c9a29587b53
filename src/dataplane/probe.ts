/**
 * The data-plane probe contract used by the client's heal: observations of one connection's data plane
 * from inside the client's netns. Implementations: linux/probe.ts (kernel state + ICMP), fake (sandbox).
 * Both decide kernel faults with the one rule in `kernel-fault.ts`; `probe-contract.ts` checks the
 * guarantees below against both.
 *
 * Guarantees of every implementation:
 * - a connection whose client interface is as the data plane made it gives `check() → { ok: true }`, and
 *   `watch` yields no fault for it;
 * - a kernel fault of that interface (missing, down, no carrier, an address or a route gone) gives a
 *   `kernel` fault with its `reason` from `check()`, and `watch` yields it after the change;
 * - a connection without a kernel mechanism (or without an interface name) is never faulty;
 * - `watch` ends (without throwing) when its signal aborts and leaves no timer, listener or process;
 * - probe (traffic) grace is per connection: it starts when that connection's watch starts (right after
 *   its establishment) and again on `reset(conn)` (after each successful Request, a heal among them);
 *   another connection's establishment or heal never moves it.
 *
 * A fault observation is a *suspicion*: the heal machine (`networkservice/heal/machine.ts`) confirms
 * kernel and probe faults alike with `check()` over `confirmations` observations one interval apart.
 */
import type { Connection } from '../api/gen/connection.js';

/** Why the client interface's kernel state is faulty (see `kernel-fault.ts`); `unreadable`: the read failed. */
export type KernelFaultReason = 'missing' | 'down' | 'no-carrier' | 'address-missing' | 'route-missing' | 'unreadable';

/** Why a probe fault was raised: no ICMP reply for longer than the probe allows (see linux/probe.ts). */
export type ProbeFaultReason = 'no-reply';

/** One observation; a fault is confirmed by re-checking (see above). */
export type Observation =
  | { readonly ok: true }
  | { readonly ok: false; readonly source: 'kernel' | 'probe'; readonly detail: string; readonly reason?: KernelFaultReason | ProbeFaultReason };

export interface DataPlaneProbe {
  /** Observations for `conn` until `signal` aborts (faults as they happen). */
  watch(conn: Connection, signal: AbortSignal): AsyncIterable<Observation>;
  /** One immediate check of the kernel state and of probe freshness. */
  check(conn: Connection, signal: AbortSignal): Promise<Observation>;
  /** Restarts the probe grace of `conn` alone (after a successful Request); `graceMs` overrides its length once. */
  reset(conn: Connection, graceMs?: number): void;
}
