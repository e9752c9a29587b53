import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Connection } from '../../api/gen/connection.js';
import type { NetworkServiceHandler } from '../../core/chain.js';
import { FakeClock } from '../../core/clock.js';
import { UnavailableError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { STOP_BASE_MS, STOP_MAX_MS, STOP_PER_CONNECTION_MS, closeAll, stopBudgetMs } from './teardown.js';

const conns = (n: number) => Array.from({ length: n }, (_, i) => Connection.fromPartial({ id: `nsc-${i}` }));
const tick = () => new Promise((r) => setImmediate(r));

/** A chain whose Closes wait until `step()`; records the most in flight at once. */
function slowChain(failIds: string[] = []) {
  let inFlight = 0;
  let maxInFlight = 0;
  const waiting: Array<() => void> = [];
  const chain: NetworkServiceHandler = {
    request: async () => {
      throw new Error('not used');
    },
    async close(conn, ctx) {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise<void>((r) => waiting.push(r));
      inFlight--;
      if (ctx.signal.aborted) throw new Error('aborted');
      if (failIds.includes(conn.id)) throw new UnavailableError('nsmgr gone');
    },
  };
  const step = () => waiting.splice(0).forEach((r) => r());
  return { chain, step, max: () => maxInFlight, waiting: () => waiting.length };
}

describe('NSC teardown', () => {
  it('the stop budget grows with the connections and is capped', () => {
    assert.equal(stopBudgetMs(0), STOP_BASE_MS);
    assert.equal(stopBudgetMs(50), STOP_BASE_MS + 50 * STOP_PER_CONNECTION_MS);
    assert.ok(stopBudgetMs(50) > 10_000, 'longer than the old fixed 10 s');
    assert.equal(stopBudgetMs(100_000), STOP_MAX_MS);
  });

  it('closes every connection with at most `concurrency` in flight and waits for all of them; failures are reported', async () => {
    const s = slowChain(['nsc-3']);
    const clock = new FakeClock();
    const closed: string[] = [];
    const done = closeAll(conns(20), { chain: s.chain, clock, log: silentLogger }, { requestTimeout: 60_000, deadline: clock.now() + 60_000, concurrency: 4, onClosed: (c) => closed.push(c.id) });
    let settled = false;
    void done.then(() => (settled = true));
    while (closed.length < 20) {
      await tick();
      assert.ok(s.waiting() <= 4);
      s.step();
    }
    const report = await done;
    assert.ok(settled);
    assert.equal(s.max(), 4);
    assert.equal(report.closed.length, 19);
    assert.deepEqual(report.failed.map((f) => f.id), ['nsc-3']);
    assert.deepEqual(report.skipped, []);
  });

  it('a Close not started when the budget is spent is skipped, not started', async () => {
    const s = slowChain();
    const clock = new FakeClock();
    const done = closeAll(conns(5), { chain: s.chain, clock, log: silentLogger }, { requestTimeout: 60_000, deadline: clock.now() + 1000, concurrency: 2 });
    await tick();
    assert.equal(s.waiting(), 2);
    await clock.advance(1000);
    s.step();
    const report = await done;
    assert.deepEqual(report.closed, ['nsc-0', 'nsc-1']);
    assert.deepEqual(report.skipped, ['nsc-2', 'nsc-3', 'nsc-4']);
  });
});
