import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Inventory } from './inventory.js';
import type { OwnedLink } from './types.js';

const link = (owner: string, ifindex = 7): OwnedLink => ({ netns: 'ns', name: `nsm-${owner}`, owner, side: 'nsc', ifindex, mac: '02:00:00:00:00:01' });

describe('Inventory', () => {
  it('exclusive runs the operations of one owner one at a time, in call order; the owner is busy meanwhile', async () => {
    const inv = new Inventory();
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = inv.exclusive('a', async () => {
      order.push('a1 start');
      await gate;
      order.push('a1 end');
    });
    const second = inv.exclusive('a', async () => void order.push('a2'));
    const other = inv.exclusive('b', async () => void order.push('b'));
    await other;
    assert.ok(inv.busy('a'));
    release();
    await Promise.all([first, second]);
    assert.deepEqual(order, ['a1 start', 'b', 'a1 end', 'a2']);
    assert.equal(inv.busy('a'), false, 'no lock is kept once the owner is idle');
  });

  it('sweep removes an orphan seen by two sweeps in a row, never a held or busy owner, at most `limit` per sweep', async () => {
    const inv = new Inventory();
    let links = [link('gone'), link('held'), link('busy'), link('x1'), link('x2')];
    const removed: string[] = [];
    const remove = async (l: OwnedLink) => {
      removed.push(l.owner);
      links = links.filter((k) => k !== l);
    };
    inv.hold('held');
    let release!: () => void;
    const busy = inv.exclusive('busy', () => new Promise<void>((r) => (release = r)));
    assert.deepEqual((await inv.sweep(async () => links, remove)).removed, []);
    const r = await inv.sweep(async () => links, remove, { limit: 2 });
    assert.deepEqual(r.removed.map((l) => l.owner), ['gone', 'x1']);
    release();
    await busy;
    assert.deepEqual((await inv.sweep(async () => links, remove)).removed.map((l) => l.owner), ['x2'], 'busy was not a suspect yet: it waits one more sweep');
    assert.deepEqual((await inv.sweep(async () => links, remove)).removed.map((l) => l.owner), ['busy']);
    assert.deepEqual(removed, ['gone', 'x1', 'x2', 'busy']);
  });

  it('sweep does not remove a link that changed since the previous sweep, and tries a failed removal again', async () => {
    const inv = new Inventory();
    let current = [link('a', 7)];
    let fail = true;
    const remove = async () => {
      if (fail) throw new Error('EBUSY');
    };
    await inv.sweep(async () => current, remove);
    current = [link('a', 8)];
    assert.deepEqual(await inv.sweep(async () => current, remove), { removed: [], failed: [] });
    const failed = await inv.sweep(async () => current, remove);
    assert.equal(failed.failed.length, 1);
    fail = false;
    assert.equal((await inv.sweep(async () => current, remove)).removed.length, 1);
  });
});
