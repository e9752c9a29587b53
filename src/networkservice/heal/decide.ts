/**
 * The heal decision, as a pure function: given the fault being healed and what the attempts so far
 * taught, repair in place or reselect. The machine (machine.ts) confirms faults, runs the attempts and
 * waits between them; this file only decides. The rule is the one written at the top of machine.ts.
 */
import type { HealAction } from './types.js';

/** What was detected, as the machine saw it when it decided to heal. */
export interface Fault {
  /** What reported the fault: the nsmgr monitor stream, a kernel-state check, or a traffic probe. */
  readonly source: 'control-plane' | 'kernel' | 'probe';
  /** The data plane checked down (always so for a kernel or probe fault). */
  readonly dataPlaneDown: boolean;
  /** Time (ms) from the last repair that restored the data plane to this detection (Infinity: none). */
  readonly sinceLastRepair: number;
}

/** What the failed attempts of this heal taught so far. */
export interface Attempts {
  readonly failedRepairs: number;
  readonly failedReselects: number;
  /** A repair was answered "not found": the endpoint is gone. */
  readonly endpointGone: boolean;
}

export type Decision = { readonly action: 'repair' } | { readonly action: 'reselect'; readonly why: string };

/** Failed repairs of a data-plane fault after which the connection is reselected. */
export const REPAIRS_BEFORE_RESELECT = 2;

export const NO_ATTEMPTS: Attempts = Object.freeze({ failedRepairs: 0, failedReselects: 0, endpointGone: false });

export function decide(fault: Fault, attempts: Attempts, stableWindow: number): Decision {
  if (attempts.endpointGone) return { action: 'reselect', why: 'endpoint gone' };
  if (fault.source === 'probe' && fault.sinceLastRepair < stableWindow && attempts.failedReselects === 0) {
    return { action: 'reselect', why: 'data plane failed again after a repair' };
  }
  if (fault.dataPlaneDown && attempts.failedRepairs >= REPAIRS_BEFORE_RESELECT) {
    return { action: 'reselect', why: 'repairs did not restore the data plane' };
  }
  return { action: 'repair' };
}

/**
 * How a failed attempt ended: answered "not found" (the endpoint is gone), not answered in time (a hop
 * or the path is silent: a cut network, a peer too busy to answer — `DeadlineExceededError`), or any other
 * failure (refused, an error answered by a hop, the data plane still down after the re-Request).
 */
export type Outcome = 'not-found' | 'no-answer' | 'failed';

/** The outcome of a failed attempt, from its error. */
export function outcomeOf(err: unknown): Outcome {
  const name = err instanceof Error ? err.name : '';
  if (name === 'NotFoundError') return 'not-found';
  if (name === 'DeadlineExceededError') return 'no-answer';
  return 'failed';
}

/**
 * The attempts after one more failed `action`. A repair that got no answer is not counted towards a
 * reselect: the endpoint is merely unreachable for now (the registry still has it), and a reselect would
 * only Close what it cannot reach and ask the same silent path again. The client keeps its interface and
 * repairs in place with backoff until the path answers, or the registry drops the endpoint ("not found",
 * then it reselects).
 */
export function failed(attempts: Attempts, action: HealAction, outcome: Outcome): Attempts {
  const counted = action === 'repair' && outcome !== 'no-answer';
  return {
    failedRepairs: attempts.failedRepairs + (counted ? 1 : 0),
    failedReselects: attempts.failedReselects + (action === 'reselect' ? 1 : 0),
    endpointGone: attempts.endpointGone || outcome === 'not-found',
  };
}
