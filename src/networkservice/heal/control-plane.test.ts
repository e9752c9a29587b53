import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Connection, MonitorScopeSelector, State, type MonitorConnectionClient } from '../../api/gen/connection.js';
import { silentLogger } from '../../core/log.js';
import { MonitorService } from '../monitor/index.js';
import { monitorControlPlane } from './control-plane.js';

/** A client's connection as nsmgr holds it: segment 0 the client's, segment 1 nsmgr's. */
const held = (id: string, nsmgrId: string, state = State.UP) =>
  Connection.fromPartial({ id: nsmgrId, state, path: { index: 1, pathSegments: [{ name: 'nsc', id }, { name: 'nsmgr', id: nsmgrId }] } });
/** The same connection as the client got it back. */
const mine = (id: string, nsmgrId: string) => Connection.fromPartial({ id, path: { index: 0, pathSegments: [{ name: 'nsc', id }, { name: 'nsmgr', id: nsmgrId }] } });

/** nsmgr's MonitorService as the client's MonitorConnection client; counts the streams opened. */
function nsmgr() {
  const svc = new MonitorService();
  const streams: AbortSignal[] = [];
  const client = (): MonitorConnectionClient => ({
    monitorConnections(selector, options) {
      streams.push(options!.signal!);
      return svc.monitorConnections(MonitorScopeSelector.fromPartial(selector), { signal: options!.signal! });
    },
  });
  return { svc, streams, client };
}

async function next(it: AsyncIterator<{ reason: string }>, ms = 2000): Promise<string | undefined> {
  const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms));
  const r = await Promise.race([it.next(), timeout]);
  if (r === 'timeout') return 'timeout';
  return r.done ? undefined : r.value.reason;
}

describe('control-plane watch', () => {
  it('one stream for all connections of the client; each hears only its own DOWN and DELETE', async () => {
    const { svc, streams, client } = nsmgr();
    const cp = monitorControlPlane(client, { log: silentLogger });
    const ac = new AbortController();
    svc.update(held('nsc-0', 'm-0'));
    svc.update(held('nsc-1', 'm-1'));
    const w0 = cp.watch(mine('nsc-0', 'm-0'), ac.signal)[Symbol.asyncIterator]();
    const w1 = cp.watch(mine('nsc-1', 'm-1'), ac.signal)[Symbol.asyncIterator]();
    const f0 = next(w0);
    let heard1: string | undefined;
    const f1 = w1.next().then((r) => (heard1 = r.done ? 'done' : r.value.reason));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(streams.length, 1, 'one stream to nsmgr for both connections');

    svc.update(held('nsc-0', 'm-0', State.DOWN));
    assert.equal(await f0, 'nsmgr reports the connection DOWN');
    // Another client of the same name (same connection id, another nsmgr segment): not this connection.
    svc.update(held('nsc-1', 'someone-else', State.DOWN));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(heard1, undefined, 'the other connection heard nothing');
    svc.delete(held('nsc-1', 'm-1'));
    await f1;
    assert.equal(heard1, 'connection deleted by the nsmgr');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(streams[0].aborted, true, 'the stream is cancelled when no connection watches it');
    ac.abort();
  });

  it('a broken stream is a fault for every connection watching it; a cancelled watch is none', async () => {
    const { svc, client } = nsmgr();
    const cp = monitorControlPlane(client, { log: silentLogger });
    const ac = new AbortController();
    const quiet = new AbortController();
    const w0 = cp.watch(mine('nsc-0', 'm-0'), ac.signal)[Symbol.asyncIterator]();
    const w1 = cp.watch(mine('nsc-1', 'm-1'), ac.signal)[Symbol.asyncIterator]();
    const w2 = cp.watch(mine('nsc-2', 'm-2'), quiet.signal)[Symbol.asyncIterator]();
    const [f0, f1, f2] = [next(w0), next(w1), next(w2)];
    await new Promise((r) => setTimeout(r, 20));
    quiet.abort();
    assert.equal(await f2, undefined, 'a cancelled watch ends without a fault');
    svc.stop();
    assert.match((await f0) ?? '', /^monitor stream to nsmgr broke/);
    assert.match((await f1) ?? '', /^monitor stream to nsmgr broke/);
    ac.abort();
  });
});
