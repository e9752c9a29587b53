import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  Connection,
  ConnectionEventType,
  MonitorScopeSelector,
  State,
  type ConnectionEvent,
  type MonitorConnectionClient,
} from '../../api/gen/connection.js';
import { networkServiceChain, passThrough } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { UnavailableError } from '../../core/errors.js';
import { injectError } from '../../testing/inject-error.js';
import { defaultRequest } from '../../testing/requests.js';
import { beginServer } from '../begin/index.js';
import { CONNECTED_URL } from '../connect/state.js';
import { updatePathServer } from '../update-path/index.js';
import { monitorServer, MonitorService } from './index.js';

const tick = () => new Promise((r) => setImmediate(r));
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await tick();
  }
  assert.fail(`timed out waiting for ${what}`);
}

const conn = (id: string, ns = 'ns-1', segs: Array<[string, string]> = [['a', id]]) =>
  Connection.fromPartial({ id, networkService: ns, path: { index: 0, pathSegments: segs.map(([name, sid]) => ({ name, id: sid })) } });

/** Reads events from a subscription into an array in the background. */
function collect(svc: MonitorService, selector: Partial<MonitorScopeSelector> = {}) {
  const ac = new AbortController();
  const events: ConnectionEvent[] = [];
  const done = (async () => {
    for await (const ev of svc.monitorConnections(MonitorScopeSelector.fromPartial(selector), { signal: ac.signal })) events.push(ev);
  })();
  return { events, stop: async () => (ac.abort(), await done) };
}

describe('MonitorService', () => {
  it('sends INITIAL_STATE_TRANSFER (even empty), then filtered UPDATE/DELETE; cancel leaves no subscriber', async () => {
    const svc = new MonitorService();
    svc.update(conn('x', 'other'));
    const sub = collect(svc, { networkServices: ['ns-1'] });
    await until(() => sub.events.length === 1, 'initial');
    assert.equal(sub.events[0].type, ConnectionEventType.INITIAL_STATE_TRANSFER);
    assert.deepEqual(sub.events[0].connections, {});
    svc.update(conn('a'));
    svc.update(conn('b', 'other'));
    svc.delete(conn('a'));
    await until(() => sub.events.length === 2, 'delete');
    // UPDATE a and DELETE a coalesced into the final DELETE (reader was not scheduled in between).
    assert.equal(sub.events[1].type, ConnectionEventType.DELETE);
    assert.deepEqual(Object.keys(sub.events[1].connections), ['a']);
    svc.update(conn('c'));
    await until(() => sub.events.length === 3, 'update');
    assert.equal(sub.events[2].type, ConnectionEventType.UPDATE);
    assert.equal(svc.subscribers, 1);
    await sub.stop();
    assert.equal(svc.subscribers, 0);
  });

  it('initial transfer holds the matching stored connections; path selectors match contiguous segments', async () => {
    const svc = new MonitorService();
    svc.update(conn('1', 'ns-1', [['nsc', '1'], ['nsmgr', '2']]));
    svc.update(conn('9', 'ns-1', [['nsc', '9'], ['nsmgr', '8']]));
    const sub = collect(svc, MonitorScopeSelector.fromPartial({ pathSegments: [{ name: 'nsmgr', id: '2' }] }));
    await until(() => sub.events.length === 1, 'initial');
    assert.deepEqual(Object.keys(sub.events[0].connections), ['1']);
    await sub.stop();
  });

  it('keeps a bounded buffer for a slow reader', async () => {
    const svc = new MonitorService({ bufferSize: 2 });
    const ac = new AbortController();
    const it = svc.monitorConnections(MonitorScopeSelector.fromPartial({}), { signal: ac.signal });
    assert.equal((await it.next()).value!.type, ConnectionEventType.INITIAL_STATE_TRANSFER);
    for (const id of ['1', '2', '3', '4', '5']) svc.update(conn(id));
    const got: string[] = [];
    for (let i = 0; i < 2; i++) got.push(...Object.keys((await it.next()).value!.connections));
    assert.deepEqual(got, ['4', '5']);
    ac.abort();
    assert.equal((await it.next()).done, true);
    assert.equal(svc.subscribers, 0);
  });

  it('stop() ends all streams', async () => {
    const svc = new MonitorService();
    const sub = collect(svc);
    await until(() => sub.events.length === 1, 'initial');
    svc.stop();
    await sub.stop();
    assert.equal(svc.subscribers, 0);
  });
});

/** A fake next hop: records MonitorConnections calls and lets the test push events or fail the stream. */
function fakeDownstream() {
  type Call = {
    url: string;
    selector: MonitorScopeSelector;
    signal: AbortSignal;
    push(ev: ConnectionEvent): void;
    fail(err: Error): void;
  };
  const calls: Call[] = [];
  const client = (url: string): MonitorConnectionClient => ({
    monitorConnections(selector, options) {
      const signal = options!.signal!;
      const queue: Array<ConnectionEvent | Error> = [];
      let wake: (() => void) | undefined;
      const call: Call = {
        url,
        selector: MonitorScopeSelector.fromPartial(selector),
        signal,
        push: (ev) => (queue.push(ev), wake?.()),
        fail: (err) => (queue.push(err), wake?.()),
      };
      calls.push(call);
      return (async function* () {
        for (;;) {
          if (signal.aborted) throw signal.reason;
          const item = queue.shift();
          if (item instanceof Error) throw item;
          if (item) {
            yield item;
            continue;
          }
          await new Promise<void>((r) => {
            wake = r;
            signal.addEventListener('abort', () => r(), { once: true });
          });
        }
      })();
    },
  });
  return { calls, client };
}

describe('monitor server', () => {
  function setup(url: { value?: string } = { value: 'unix:///next.sock' }) {
    const svc = new MonitorService();
    const down = fakeDownstream();
    const fail = { request: false };
    const chain = networkServiceChain('t', [
      updatePathServer({ name: 'nsmgr' }),
      beginServer(),
      monitorServer({ monitor: svc, monitorClient: down.client }),
      passThrough('fake-connect', {
        async request(req, ctx) {
          if (fail.request) throw new UnavailableError('next hop down');
          if (url.value) ctx.state.set(CONNECTED_URL, url.value);
          const c = req.connection!;
          // The next hop adds its segment, answers with our index (as update-path does).
          const segs = [...c.path!.pathSegments.slice(0, c.path!.index + 1), { name: 'fwd', id: 'fwd-id', token: '', expires: undefined, metrics: {} }];
          return { ...c, path: { index: c.path!.index, pathSegments: segs } };
        },
        close: async () => {},
      }),
    ]);
    const req = defaultRequest({ id: 'nsc-1', pathSegments: [{ name: 'nsc', id: 'nsc-1' }] });
    return { svc, down, chain, req, fail, url };
  }

  it('UPDATE on Request, DOWN on failed re-Request, DELETE on Close', async () => {
    const { svc, chain, req, fail } = setup({});
    const sub = collect(svc);
    const c = await chain.request(req, newContext());
    const myId = c.path!.pathSegments[1].id;
    assert.equal(svc.get(myId)!.state, State.UP);
    fail.request = true;
    await assert.rejects(chain.request({ ...req, connection: c }, newContext()), { name: 'UnavailableError' });
    assert.equal(svc.get(myId)!.state, State.DOWN);
    await chain.close(c, newContext());
    assert.equal(svc.get(myId), undefined);
    await until(() => sub.events.some((e) => e.type === ConnectionEventType.DELETE), 'delete');
    await sub.stop();
  });

  it('a failed first Request broadcasts nothing', async () => {
    const svc = new MonitorService();
    const chain = networkServiceChain('t', [beginServer(), monitorServer({ monitor: svc }), injectError({ requests: [0] })]);
    await assert.rejects(chain.request(defaultRequest({ id: 'z' }), newContext()));
    assert.deepEqual(svc.list(), []);
  });

  it('passthrough: selector, client filter, DELETE → DOWN, stream failure → DOWN, stop on Close', async () => {
    const { svc, down, chain, req } = setup();
    const c = await chain.request(req, newContext());
    const me = c.path!.pathSegments[1];
    await until(() => down.calls.length === 1, 'monitor call');
    const call = down.calls[0];
    assert.equal(call.url, 'unix:///next.sock');
    // One stream per downstream URL for every connection of this hop: selected by this hop's name only.
    assert.deepEqual(call.selector.pathSegments.map((s) => [s.name, s.id]), [['nsmgr', '']]);

    const downConn = (state: State, opts: { id?: string; index?: number } = {}) =>
      Connection.fromPartial({
        id: 'fwd-id',
        state,
        path: { index: opts.index ?? 2, pathSegments: [{ name: 'nsc', id: 'nsc-1' }, { name: 'nsmgr', id: opts.id ?? me.id }, { name: 'fwd', id: 'fwd-id' }] },
        context: { MTU: 1400 },
      });
    // Unchanged initial state is suppressed, another hop's connection is filtered.
    call.push({ type: ConnectionEventType.INITIAL_STATE_TRANSFER, connections: { a: downConn(State.UP, { id: 'someone-else' }) } });
    call.push({ type: ConnectionEventType.UPDATE, connections: { a: downConn(State.DOWN, { index: 0 }) } });
    call.push({ type: ConnectionEventType.UPDATE, connections: { a: downConn(State.UP) } });
    await until(() => svc.get(me.id)!.context?.MTU === 1400, 'context taken from downstream');
    assert.equal(svc.get(me.id)!.state, State.UP);
    assert.equal(svc.get(me.id)!.path!.index, 1);

    call.push({ type: ConnectionEventType.DELETE, connections: { a: downConn(State.UP) } });
    await until(() => svc.get(me.id)!.state === State.DOWN, 'DELETE → DOWN');

    // Re-request with the same URL: loop still running, not restarted.
    await chain.request({ ...req, connection: c }, newContext());
    assert.equal(svc.get(me.id)!.state, State.UP);
    assert.equal(down.calls.length, 1);

    call.fail(new UnavailableError('stream broke'));
    await until(() => svc.get(me.id)!.state === State.DOWN, 'stream failure → DOWN');

    // A re-request after the loop ended starts a new one.
    await chain.request({ ...req, connection: c }, newContext());
    await until(() => down.calls.length === 2, 'restart');

    await chain.close(c, newContext());
    await until(() => down.calls[1].signal.aborted, 'stream cancelled on Close');
    assert.equal(svc.get(me.id), undefined);
  });

  it('passthrough restarts when the downstream URL changes', async () => {
    const url = { value: 'unix:///one.sock' };
    const { down, chain, req } = setup(url);
    const c = await chain.request(req, newContext());
    await until(() => down.calls.length === 1, 'first');
    url.value = 'unix:///two.sock';
    await chain.request({ ...req, connection: c }, newContext());
    await until(() => down.calls.length === 2, 'second');
    assert.equal(down.calls[0].signal.aborted, true);
    assert.equal(down.calls[1].url, 'unix:///two.sock');
    await chain.close(c, newContext());
    await until(() => down.calls[1].signal.aborted, 'closed');
  });

  it('passthrough: the connections to one downstream share one stream; events go to their own connection; the last Close cancels it', async () => {
    const { svc, down, chain, req } = setup();
    const c1 = await chain.request(req, newContext());
    const req2 = defaultRequest({ id: 'nsc-2', pathSegments: [{ name: 'nsc', id: 'nsc-2' }] });
    const c2 = await chain.request(req2, newContext());
    await until(() => down.calls.length === 1, 'monitor call');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(down.calls.length, 1, 'one stream for both connections');
    const call = down.calls[0];
    const ids = [c1.path!.pathSegments[1].id, c2.path!.pathSegments[1].id];
    const downConn = (id: string, nsc: string, state: State, mtu: number) =>
      Connection.fromPartial({
        id: `fwd-${id}`,
        state,
        path: { index: 2, pathSegments: [{ name: 'nsc', id: nsc }, { name: 'nsmgr', id }, { name: 'fwd', id: `fwd-${id}` }] },
        context: { MTU: mtu },
      });
    call.push({ type: ConnectionEventType.UPDATE, connections: { a: downConn(ids[1], 'nsc-2', State.UP, 1300) } });
    await until(() => svc.get(ids[1])!.context?.MTU === 1300, 'second connection updated');
    assert.notEqual(svc.get(ids[0])!.context?.MTU, 1300, 'the first connection is not touched by the second one\'s event');

    await chain.close(c1, newContext());
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(call.signal.aborted, false, 'the stream stays while a connection watches it');
    call.fail(new UnavailableError('stream broke'));
    await until(() => svc.get(ids[1])!.state === State.DOWN, 'stream failure → DOWN for the connection still watching');

    // The next Request opens a new shared stream; the last Close cancels it.
    await chain.request({ ...req2, connection: c2 }, newContext());
    await until(() => down.calls.length === 2, 'reopened');
    await chain.close(c2, newContext());
    await until(() => down.calls[1].signal.aborted, 'cancelled with the last subscription');
  });
});
