import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsIdentity, processNetns } from '../core/peer.js';
import { namedNetnsPods } from './named-netns.js';

const IS_ROOT = process.getuid?.() === 0;

describe('named netns pods', () => {
  it('lists each named netns by identity; never the own netns, nor a name that is no SPIFFE segment', { skip: !IS_ROOT && 'needs root (netns)' }, async (t) => {
    const ns = `nsmt-named-${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    t.after(() => execFileSync('ip', ['netns', 'del', ns]));
    const pods = await namedNetnsPods();
    assert.equal(pods.get((await netnsIdentity(`file:///run/netns/${ns}`))!), ns);
    // a directory of our own: the host netns under a name, a name that is no SPIFFE segment, a good one
    const dir = mkdtempSync(join(tmpdir(), 'nsmt-named-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    symlinkSync('/proc/self/ns/net', join(dir, 'host'));
    symlinkSync(`/run/netns/${ns}`, join(dir, 'a b'));
    symlinkSync(`/run/netns/${ns}`, join(dir, 'pod-1'));
    const own = await namedNetnsPods(dir);
    assert.equal(own.has((await processNetns('self'))!), false);
    assert.deepEqual([...own.values()], ['pod-1']);
  });
});
