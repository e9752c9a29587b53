import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Connection } from '../../api/gen/connection.js';
import { FakeClock } from '../../core/clock.js';
import { silentLogger } from '../../core/log.js';
import { AsyncQueue } from '../../core/queue.js';
import { statusSaysReady } from '../../local/pods.js';
import type { HealEvent } from '../../networkservice/heal/index.js';
import { defaultRequest } from '../../testing/requests.js';
import { HEAL_EVENTS_KEPT, StatusBoard, type NscStatus } from './status.js';

function board() {
  const dir = mkdtempSync(join(tmpdir(), 'nsc-status-'));
  const file = join(dir, 'nsc.json');
  const clock = new FakeClock(Date.UTC(2026, 0, 2, 3, 4, 5));
  const status = new StatusBoard({ name: 'nsc', file, clock, log: silentLogger });
  const read = () => JSON.parse(readFileSync(file, 'utf8')) as NscStatus;
  return { status, file, read, clock, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const healed = (at: number): HealEvent => ({ type: 'healed', connId: 'nsc-0', at, action: 'repair', cause: 'data-plane', detectedAt: at - 5, ms: 5, attempts: 1 });

describe('nsc status board', () => {
  it('writes the status format nsm status and --wait read', async (t) => {
    const b = board();
    t.after(b.cleanup);
    b.status.connecting(defaultRequest({ id: 'nsc-0', networkService: 'ns-1' }));
    b.status.established(Connection.fromPartial({ id: 'nsc-0', networkService: 'ns-1' }));
    b.status.heal({ type: 'detected', connId: 'nsc-0', at: 1, cause: 'data-plane', detail: 'x' });
    await b.status.flush();
    let s = b.read();
    assert.equal(s.name, 'nsc');
    assert.deepEqual(
      s.connections.map((c) => [c.id, c.networkService, c.state]),
      [['nsc-0', 'ns-1', 'healing']],
    );
    assert.equal((s.connections[0]!.connection as { id: string }).id, 'nsc-0');
    assert.deepEqual(s.heal, { events: 1, healed: 0, last: { type: 'detected', connId: 'nsc-0', at: 1, cause: 'data-plane', detail: 'x' } });
    assert.equal(s.updatedAt, '2026-01-02T03:04:05.000Z');
    assert.equal(statusSaysReady(s), false);

    b.status.heal(healed(10));
    await b.status.flush();
    s = b.read();
    assert.equal(s.connections[0]!.state, 'connected');
    assert.equal(s.heal.lastHeal?.type, 'healed');
    assert.equal(statusSaysReady(s), true);

    b.status.closed('nsc-0');
    await b.status.flush();
    assert.equal(b.read().connections[0]!.connection, undefined);
    assert.equal(existsSync(`${b.file}.tmp`), false);
  });

  it('coalesces a burst: one write in flight, one pending, the last state on disk', async (t) => {
    const b = board();
    t.after(b.cleanup);
    b.status.connecting(defaultRequest({ id: 'nsc-0' }));
    for (let i = 0; i < 1000; i++) b.status.heal(healed(i));
    await b.status.flush();
    assert.ok(b.status.writes <= 2, `${b.status.writes} writes for 1000 changes`);
    const s = b.read();
    assert.equal(s.heal.events, HEAL_EVENTS_KEPT);
    assert.equal(s.heal.last?.at, 999);
    assert.equal(b.status.healEvents.length, HEAL_EVENTS_KEPT);
  });

  it('consumes a heal event stream until it ends', async (t) => {
    const b = board();
    t.after(b.cleanup);
    const events = new AsyncQueue<HealEvent>();
    const done = b.status.consume(events);
    events.push(healed(1));
    events.push(healed(2));
    events.close();
    await done;
    assert.deepEqual(
      b.status.healEvents.map((e) => e.at),
      [1, 2],
    );
  });

  it('without a file it only keeps the state in memory', async () => {
    const status = new StatusBoard({ name: 'nsc', clock: new FakeClock(), log: silentLogger });
    status.heal(healed(1));
    await status.flush();
    assert.equal(status.writes, 0);
    assert.equal(status.snapshot().heal.healed, 1);
  });
});
