/**
 * The orphan GC of a data plane, as the forwarder runs it: once `grace` after start, `collectOrphans()`
 * (links a previous instance left that no connection re-requested); then every `interval`,
 * `sweepOrphans()` (links of connections this instance no longer holds — a removal that failed or was cut
 * short). Rounds never overlap: the next is scheduled when one ends. One timer on the injected clock;
 * `stop()` cancels it and aborts a round in progress. What it removes is logged at info, what it could not
 * remove at warn; a failed round is logged and the next one runs as planned.
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import { errorMessage } from '../core/errors.js';
import type { Running } from '../core/lifecycle.js';
import type { Logger } from '../core/log.js';
import type { DataPlane, OrphanReport } from './types.js';

export interface OrphanGcOptions {
  /** Delay (ms) from start to the collection of what `start()` found. */
  readonly grace: number;
  /** Period (ms) of the sweeps that follow. */
  readonly interval: number;
  /** Most links one sweep removes. */
  readonly limit?: number;
}

/** Names of removed links logged per round at most (the count is always logged). */
const LOGGED_NAMES = 20;

export function startOrphanGc(dataplane: DataPlane, deps: { clock: Clock; log: Logger }, opts: OrphanGcOptions): Running {
  const log = deps.log.child({ element: 'orphan-gc' });
  const stopped = new AbortController();
  let timer: TimerHandle | undefined;
  let round: Promise<void> = Promise.resolve();

  const report = (what: string, r: OrphanReport) => {
    if (r.removed.length > 0) {
      log.info({ links: r.removed.length, names: r.removed.slice(0, LOGGED_NAMES).map((l) => `${l.name}(${l.owner})`) }, `${what}: removed orphan links (no connection holds them)`);
    }
    for (const { link, error } of r.failed) log.warn({ err: errorMessage(error), link: link.name, owner: link.owner, netns: link.netns }, `${what}: orphan removal failed`);
  };
  const run = (what: string, fn: () => Promise<OrphanReport>) => {
    round = (async () => {
      try {
        report(what, await fn());
      } catch (err) {
        if (!stopped.signal.aborted) log.warn({ err: errorMessage(err) }, `${what} failed`);
      }
      if (!stopped.signal.aborted) timer = deps.clock.setTimeout(() => run('orphan sweep', () => dataplane.sweepOrphans(sweepOptions())), opts.interval);
    })();
  };
  const sweepOptions = () => (opts.limit === undefined ? { signal: stopped.signal } : { signal: stopped.signal, limit: opts.limit });

  timer = deps.clock.setTimeout(() => run('orphan collection', () => dataplane.collectOrphans({ signal: stopped.signal })), opts.grace);
  return {
    async stop() {
      stopped.abort();
      timer?.cancel();
      await round;
    },
  };
}
