/**
 * The NSC's stop: Close every established connection, at most `concurrency` at once, and wait for all of
 * them within a stop budget that grows with the number of connections (`stopBudgetMs`). Closing a few
 * hundred connections at once used to queue them all behind each other in nsmgr and the forwarder until
 * the process's fixed 10 s hard exit cut them off, leaving their veth pairs behind.
 *
 * Guarantees:
 * - at most `concurrency` Closes are in flight; each is bounded by `requestTimeout` and by what is left of
 *   the budget (less STOP_MARGIN_MS, kept for the status file and the log);
 * - a Close not started when the budget is spent is not started (reported as `skipped`);
 * - a failed Close is reported, never thrown; progress is logged at info (start, end), failures at warn.
 * The process edge (`src/cli/component.ts`) exits hard only after `stopBudgetMs` (the Running object
 * tells it), so a stop that keeps to these bounds always ends by itself.
 */
import type { Connection } from '../../api/gen/connection.js';
import type { NetworkServiceHandler } from '../../core/chain.js';
import type { Clock } from '../../core/clock.js';
import { newContext } from '../../core/context.js';
import { errorMessage } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { forEachLimited } from '../../core/pool.js';
import { linkSignals } from '../../core/signals.js';

/** Closes in flight at once during stop (each NSC process). */
export const DEFAULT_CLOSE_CONCURRENCY = 8;
/** Stop budget: this much for any NSC … */
export const STOP_BASE_MS = 15_000;
/** … plus this much per connection to close … */
export const STOP_PER_CONNECTION_MS = 500;
/** … but never more than this (5 minutes). */
export const STOP_MAX_MS = 300_000;
/** Part of the budget kept for what follows the Closes (status file, log flush). */
export const STOP_MARGIN_MS = 2_000;

/** How long an NSC holding `connections` connections may take to stop: base + per connection, capped. */
export function stopBudgetMs(connections: number): number {
  return Math.min(STOP_BASE_MS + Math.max(0, connections) * STOP_PER_CONNECTION_MS, STOP_MAX_MS);
}

export interface CloseDeps {
  readonly chain: NetworkServiceHandler;
  readonly clock: Clock;
  readonly log: Logger;
}

export interface CloseAllOptions {
  readonly requestTimeout: number;
  /** Absolute time (clock ms) after which no Close starts and running ones are cancelled. */
  readonly deadline: number;
  readonly concurrency?: number;
  /** Called after each connection's Close, whatever its outcome. */
  readonly onClosed?: (conn: Connection) => void;
}

export interface CloseAllReport {
  closed: string[];
  failed: Array<{ id: string; err: string }>;
  skipped: string[];
}

/** Closes `conn` down the chain within `timeoutMs`; resolves with the failure, if any. */
export async function closeConnection(conn: Connection, deps: Pick<CloseDeps, 'chain' | 'log'>, timeoutMs: number): Promise<string | undefined> {
  const link = linkSignals([], timeoutMs);
  try {
    await deps.chain.close(conn, newContext({ signal: link.signal, log: deps.log }));
    deps.log.debug({ connId: conn.id }, 'connection closed');
    return undefined;
  } catch (err) {
    return errorMessage(err);
  } finally {
    link.dispose();
  }
}

/** Closes every connection of `conns` with bounded concurrency before `opts.deadline`; logs and reports what happened. */
export async function closeAll(conns: readonly Connection[], deps: CloseDeps, opts: CloseAllOptions): Promise<CloseAllReport> {
  const { clock, log } = deps;
  const concurrency = Math.max(1, opts.concurrency ?? DEFAULT_CLOSE_CONCURRENCY);
  const report: CloseAllReport = { closed: [], failed: [], skipped: [] };
  const t0 = clock.now();
  log.info({ connections: conns.length, concurrency, budgetMs: opts.deadline - t0 }, `closing ${conns.length} connections`);
  await forEachLimited(conns, concurrency, async (conn) => {
    const left = opts.deadline - clock.now();
    if (left <= 0) {
      report.skipped.push(conn.id);
      return;
    }
    const err = await closeConnection(conn, deps, Math.min(opts.requestTimeout, left));
    if (err === undefined) report.closed.push(conn.id);
    else {
      report.failed.push({ id: conn.id, err });
      log.warn({ connId: conn.id, err }, 'close failed');
    }
    opts.onClosed?.(conn);
  });
  const summary = { closed: report.closed.length, failed: report.failed.length, skipped: report.skipped.length, ms: clock.now() - t0 };
  if (report.skipped.length > 0) log.warn({ ...summary, ids: report.skipped.slice(0, 20) }, 'stop budget spent; connections left unclosed');
  log.info(summary, `closed ${report.closed.length} of ${conns.length} connections`);
  return report;
}
