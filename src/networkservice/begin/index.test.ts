import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { State, type Connection } from '../../api/gen/connection.js';
import type { NetworkServiceRequest } from '../../api/gen/networkservice.js';
import { networkServiceChain, passThrough, type NetworkServiceElement } from '../../core/chain.js';
import { newContext, type CallContext, type EventFactory } from '../../core/context.js';
import { CancelledError } from '../../core/errors.js';
import { StateKey } from '../../core/state.js';
import { checkRequest } from '../../testing/check-request.js';
import { count } from '../../testing/count.js';
import { injectError } from '../../testing/inject-error.js';
import { defaultRequest } from '../../testing/requests.js';
import { updatePathServer } from '../update-path/index.js';
import { beginClient, beginServer, KeyedSerializer } from './index.js';

const SEEN = new StateKey<number>('test.seen');

/** Counts requests per connection in the per-connection state and captures the event factory. */
function stateful(captured: { events?: EventFactory; state?: CallContext['state'] } = {}): NetworkServiceElement {
  return passThrough('stateful', {
    requires: ['state'],
    async request(req, ctx, next) {
      ctx.state.set(SEEN, (ctx.state.get(SEEN) ?? 0) + 1);
      captured.events = ctx.events;
      captured.state = ctx.state;
      const conn = await next.request(req, ctx);
      conn.labels = { ...conn.labels, seen: String(ctx.state.get(SEEN)) };
      return conn;
    },
  });
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** An element that blocks Requests until released and logs enter/exit. */
function gate(log: string[]) {
  const waiting: Array<() => void> = [];
  const el: NetworkServiceElement = {
    name: 'gate',
    async request(req, ctx, next) {
      log.push(`enter ${req.connection!.id}`);
      const d = deferred();
      waiting.push(d.resolve);
      await d.promise;
      log.push(`exit ${req.connection!.id}`);
      return next.request(req, ctx);
    },
    async close(conn, ctx, next) {
      log.push(`close ${conn.id}`);
      return next.close(conn, ctx);
    },
  };
  return { el, release: () => waiting.shift()?.(), pending: () => waiting.length };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('KeyedSerializer', () => {
  it('runs same-key work in order and forgets idle keys', async () => {
    const s = new KeyedSerializer();
    const order: number[] = [];
    const d = deferred();
    const a = s.run('k', async () => {
      await d.promise;
      order.push(1);
    });
    const b = s.run('k', async () => void order.push(2));
    const c = s.run('other', async () => void order.push(3));
    await c;
    assert.deepEqual(order, [3]);
    d.resolve();
    await Promise.all([a, b]);
    assert.deepEqual(order, [3, 1, 2]);
    await tick();
    assert.equal(s.size, 0);
  });
});

describe('begin server', () => {
  it('serializes requests of one id, not of different ids; Close waits for the in-flight Request', async () => {
    const log: string[] = [];
    const g = gate(log);
    const begin = beginServer();
    const chain = networkServiceChain('t', [begin, g.el]);
    const r1 = chain.request(defaultRequest({ id: 'a' }), newContext());
    const r2 = chain.request(defaultRequest({ id: 'a' }), newContext());
    const rb = chain.request(defaultRequest({ id: 'b' }), newContext());
    await tick();
    assert.deepEqual(log, ['enter a', 'enter b']);
    const closed = chain.close((await Promise.resolve(defaultRequest({ id: 'a' }))).connection!, newContext());
    g.release();
    await r1;
    await tick();
    assert.deepEqual(log, ['enter a', 'enter b', 'exit a', 'enter a']);
    g.release(); // b
    g.release(); // second a
    await Promise.all([r2, rb, closed]);
    assert.deepEqual(log.slice(-3), ['exit b', 'exit a', 'close a']);
    assert.equal(begin.size, 1); // b stays
    assert.equal(begin.busy, 0);
  });

  it('keeps per-connection state across re-requests, sets UP, drops it on Close', async () => {
    const cap: { events?: EventFactory } = {};
    const begin = beginServer();
    const chain = networkServiceChain('t', [begin, stateful(cap)]);
    const req = defaultRequest({ id: 'c' });
    req.connection!.state = State.DOWN;
    const c1 = await chain.request(req, newContext());
    assert.equal(c1.state, State.UP);
    assert.equal(c1.labels.seen, '1');
    const c2 = await chain.request({ ...req, connection: c1 }, newContext());
    assert.equal(c2.labels.seen, '2');
    const lifetime = cap.events!.lifetime;
    assert.equal(lifetime.aborted, false);
    await chain.close(c2, newContext());
    assert.equal(lifetime.aborted, true);
    assert.equal(begin.size, 0);
    const c3 = await chain.request(req, newContext());
    assert.equal(c3.labels.seen, '1');
  });

  it('rejects an empty connection id', async () => {
    const chain = networkServiceChain('t', [beginServer()]);
    await assert.rejects(chain.request(defaultRequest({ id: '' }), newContext()), { name: 'InvalidArgumentError' });
  });

  it('a failed first request drops the state; a failed re-request keeps it', async () => {
    const cap: { events?: EventFactory } = {};
    const begin = beginServer();
    const chain = networkServiceChain('t', [begin, stateful(cap), injectError({ requests: [0, 2] })]);
    const req = defaultRequest({ id: 'd' });
    await assert.rejects(chain.request(req, newContext()), { name: 'UnavailableError' });
    assert.equal(begin.size, 0);
    assert.equal(cap.events!.lifetime.aborted, true);
    const c = await chain.request(req, newContext());
    assert.equal(c.labels.seen, '1');
    await assert.rejects(chain.request({ ...req, connection: c }, newContext()), { name: 'UnavailableError' });
    assert.equal(begin.size, 1);
    assert.equal(cap.events!.lifetime.aborted, false);
    const again = await chain.request({ ...req, connection: c }, newContext());
    assert.equal(again.labels.seen, '3');
  });

  it('Close of an unknown id does not go down the chain', async () => {
    const counter = count();
    const chain = networkServiceChain('t', [beginServer(), counter]);
    await chain.close(defaultRequest({ id: 'nobody' }).connection!, newContext());
    assert.equal(counter.closes, 0);
  });

  it('Close goes down with the stored connection and succeeds state-wise even if it fails downstream', async () => {
    const closed: Connection[] = [];
    const begin = beginServer();
    const chain = networkServiceChain('t', [
      begin,
      { name: 'spy', request: async (r) => ({ ...r.connection!, networkServiceEndpointName: 'nse-1' }), close: async (c) => void closed.push(c) },
    ]);
    await chain.request(defaultRequest({ id: 'e' }), newContext());
    await chain.close(defaultRequest({ id: 'e' }).connection!, newContext());
    assert.equal(closed[0].networkServiceEndpointName, 'nse-1');

    const failing = beginServer();
    const chain2 = networkServiceChain('t', [failing, injectError({ closes: [0] })]);
    await chain2.request(defaultRequest({ id: 'f' }), newContext());
    await assert.rejects(chain2.close(defaultRequest({ id: 'f' }).connection!, newContext()), { name: 'UnavailableError' });
    assert.equal(failing.size, 0);
  });

  it('RESELECT_REQUESTED on an established id closes the old connection, then proceeds as new', async () => {
    const counter = count();
    const events: string[] = [];
    const begin = beginServer();
    const chain = networkServiceChain('t', [
      begin,
      stateful(),
      counter,
      { name: 'spy', request: async (r) => (events.push(`req ${r.connection!.state}`), r.connection!), close: async () => void events.push('close') },
    ]);
    const req = defaultRequest({ id: 'g' });
    const c1 = await chain.request(req, newContext());
    await chain.request({ ...req, connection: c1 }, newContext());
    const c3 = await chain.request({ ...req, connection: { ...c1, state: State.RESELECT_REQUESTED } }, newContext());
    assert.deepEqual(events, [`req ${State.UP}`, `req ${State.UP}`, 'close', `req ${State.RESELECT_REQUESTED}`]);
    assert.equal(c3.labels.seen, '1'); // fresh state
    assert.equal(c3.state, State.UP);
    assert.equal(counter.closes, 1);
  });

  it('a queued call whose signal aborted fails without running', async () => {
    const log: string[] = [];
    const g = gate(log);
    const chain = networkServiceChain('t', [beginServer(), g.el]);
    const first = chain.request(defaultRequest({ id: 'h' }), newContext());
    const ac = new AbortController();
    const second = chain.request(defaultRequest({ id: 'h' }), newContext({ signal: ac.signal }));
    ac.abort(new CancelledError('caller gave up'));
    await tick();
    g.release();
    await first;
    await assert.rejects(second, { name: 'CancelledError' });
    assert.deepEqual(log, ['enter h', 'exit h']);
  });

  it('events: request re-runs the stored request, close closes and aborts lifetime', async () => {
    const cap: { events?: EventFactory } = {};
    const counter = count();
    const begin = beginServer();
    const chain = networkServiceChain('t', [begin, stateful(cap), counter]);
    const req = defaultRequest({ id: 'i', labels: { app: 'x' } });
    await chain.request(req, newContext());
    const ev = cap.events!;
    const c = await ev.request();
    assert.equal(c.labels.app, 'x');
    assert.equal(c.labels.seen, '2');
    assert.equal(counter.requests, 2);
    await ev.close();
    assert.equal(counter.closes, 1);
    assert.equal(ev.lifetime.aborted, true);
    assert.equal(begin.size, 0);
    await assert.rejects(ev.request(), { name: 'NotFoundError' });
    await ev.close(); // no-op
    assert.equal(counter.closes, 1);
  });

  it('events are bounded by eventTimeout and carry the connection state', async () => {
    const cap: { events?: EventFactory } = {};
    let hang = false;
    const begin = beginServer({}, { eventTimeout: 20 });
    const chain = networkServiceChain('t', [
      begin,
      stateful(cap),
      passThrough('hang', {
        async request(req, ctx, next) {
          if (!hang) return next.request(req, ctx);
          assert.equal(ctx.state.get(SEEN), 2);
          await new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true }));
          throw new Error('unreachable');
        },
      }),
    ]);
    await chain.request(defaultRequest({ id: 'j' }), newContext());
    hang = true;
    await assert.rejects(cap.events!.request(), { name: 'DeadlineExceededError', message: 'timed out after 20 ms' });
    assert.equal(begin.size, 1); // failed re-request keeps state
    assert.equal(begin.busy, 0);
  });

  it('passes through when the context already has events (nested begin)', async () => {
    const outer = beginServer();
    const innerBegin = beginClient();
    const chain = networkServiceChain('t', [outer, innerBegin, stateful()]);
    await chain.request(defaultRequest({ id: 'k' }), newContext());
    assert.equal(outer.size, 1);
    assert.equal(innerBegin.size, 0);
  });

  it('rejects a bad eventTimeout', () => {
    assert.throws(() => beginServer({}, { eventTimeout: 0 }), { name: 'InvalidArgumentError' });
  });
});

/** A first Request from the previous hop `caller` for its connection `id`: the caller's segment only. */
function fromCaller(id: string, caller = 'nsc'): NetworkServiceRequest {
  return defaultRequest({ id, pathSegments: [{ name: caller, id }], pathIndex: 0 });
}

describe('begin server: one connection per caller connection', () => {
  it('concurrent first Requests of one caller connection are one connection here, serialized; other callers are others', async () => {
    const log: string[] = [];
    const g = gate(log);
    const begin = beginServer();
    const counter = count();
    const chain = networkServiceChain('t', [updatePathServer({ name: 'hop' }), begin, stateful(), counter, g.el]);
    const calls = [chain.request(fromCaller('x'), newContext()), chain.request(fromCaller('x'), newContext()), chain.request(fromCaller('x'), newContext())];
    const other = chain.request(fromCaller('y'), newContext());
    const sameIdOtherHop = chain.request(fromCaller('x', 'other-nsc'), newContext());
    await tick();
    assert.equal(g.pending(), 3, 'the first of x, y and x from another caller run; the other two of x wait');
    for (let i = 0; i < 5; i++) {
      g.release();
      await tick();
    }
    const out = await Promise.all(calls);
    await Promise.all([other, sameIdOtherHop]);
    const hopIds = out.map((c) => c.path!.pathSegments[1]!.id);
    assert.equal(new Set(hopIds).size, 1, 'one id at this hop');
    assert.deepEqual(out.map((c) => c.labels.seen), ['1', '2', '3'], 'the later ones are re-Requests of the first');
    assert.equal(counter.uniqueRequests, 3, 'x, y, and x of the other caller');
    assert.equal(begin.size, 3);
    assert.equal(begin.bindings, 3);
    // A Close naming only the caller's segment closes the connection.
    await chain.close(fromCaller('x').connection!, newContext());
    assert.equal(begin.size, 2);
    assert.equal(begin.bindings, 2);
    assert.equal(begin.busy, 0);
  });

  it('a caller in another netns naming the same segment is another caller: its own connection, and its Close closes nothing of the first', async () => {
    const begin = beginServer();
    const counter = count();
    const chain = networkServiceChain('t', [updatePathServer({ name: 'hop' }), begin, stateful(), counter]);
    const podA = () => newContext({ peer: async () => ({ netns: 'inode://4/100' }) });
    const podB = () => newContext({ peer: async () => ({ netns: 'inode://4/200' }) });
    const [a1, a2] = await Promise.all([chain.request(fromCaller('x'), podA()), chain.request(fromCaller('x'), podA())]);
    const b = await chain.request(fromCaller('x'), podB());
    assert.equal(a1.path!.pathSegments[1]!.id, a2.path!.pathSegments[1]!.id, 'one connection for pod A');
    assert.notEqual(b.path!.pathSegments[1]!.id, a1.path!.pathSegments[1]!.id, 'pod B gets its own');
    assert.equal(b.labels.seen, '1');
    await chain.close(fromCaller('x').connection!, podB());
    assert.equal(begin.size, 1, 'pod A\'s connection is still there');
    await chain.close(fromCaller('x').connection!, podA());
    assert.deepEqual([begin.size, begin.bindings, begin.busy], [0, 0, 0]);
  });

  it('a failed first Request unbinds: the next one is a first Request again; nothing is left after Close', async () => {
    const begin = beginServer();
    const counter = count();
    const chain = networkServiceChain('t', [updatePathServer({ name: 'hop' }), begin, stateful(), counter, injectError({ requests: [0] })]);
    await assert.rejects(chain.request(fromCaller('x'), newContext()), { name: 'UnavailableError' });
    assert.equal(begin.size, 0);
    assert.equal(begin.bindings, 0);
    const c = await chain.request(fromCaller('x'), newContext());
    assert.equal(c.labels.seen, '1');
    assert.notEqual(counter.requestIds[1], counter.requestIds[0], 'a new id at this hop');
    await chain.close(c, newContext());
    assert.deepEqual([begin.size, begin.bindings, begin.busy], [0, 0, 0]);
    await chain.close(fromCaller('x').connection!, newContext());
    assert.equal(counter.closes, 1, 'closing again finds nothing');
  });

  it('a queued first Request cancelled before its turn leaves no binding; a re-Request naming this hop keeps its id', async () => {
    const log: string[] = [];
    const g = gate(log);
    const begin = beginServer();
    const chain = networkServiceChain('t', [updatePathServer({ name: 'hop' }), begin, g.el]);
    const first = chain.request(fromCaller('x'), newContext());
    const ac = new AbortController();
    const queued = chain.request(fromCaller('x'), newContext({ signal: ac.signal }));
    ac.abort(new CancelledError('caller left'));
    await tick();
    g.release();
    const c = await first;
    await assert.rejects(queued, { name: 'CancelledError' });
    const again = chain.request({ connection: c, mechanismPreferences: [] }, newContext());
    await tick();
    g.release();
    assert.equal((await again).path!.pathSegments[1]!.id, c.path!.pathSegments[1]!.id);
    await chain.close(c, newContext());
    assert.deepEqual([begin.size, begin.bindings, begin.busy], [0, 0, 0]);
  });
});

describe('begin client', () => {
  it('reselect event closes, then re-requests without mechanism and endpoint, keeping the rest; state forced UP', async () => {
    const cap: { events?: EventFactory } = {};
    const seen: NetworkServiceRequest[] = [];
    const closes: Connection[] = [];
    const begin = beginClient();
    const chain = networkServiceChain('t', [
      begin,
      stateful(cap),
      checkRequest((r) => void seen.push(structuredClone(r))),
      {
        name: 'endpoint',
        request: async (r) => ({
          ...r.connection!,
          state: r.connection!.state,
          networkServiceEndpointName: 'nse-1',
          mechanism: { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1' } },
        }),
        close: async (c) => void closes.push(c),
      },
    ]);
    const req = defaultRequest({ id: 'nsc-1', labels: { app: 'a' } });
    const first = await chain.request(req, newContext());
    assert.equal(first.networkServiceEndpointName, 'nse-1');
    await cap.events!.request({ reselect: true });
    assert.equal(closes.length, 1);
    assert.equal(closes[0].networkServiceEndpointName, 'nse-1');
    const re = seen[1].connection!;
    assert.equal(re.mechanism, undefined);
    assert.equal(re.networkServiceEndpointName, '');
    assert.equal(re.state, State.RESELECT_REQUESTED);
    assert.equal(re.labels.app, 'a');
    assert.deepEqual(seen[1].mechanismPreferences, req.mechanismPreferences);
    // The stored connection is UP: a plain event re-request sends state UP.
    await cap.events!.request();
    assert.equal(seen[2].connection!.state, State.UP);
  });

  it('reselect proceeds even if the Close fails', async () => {
    const cap: { events?: EventFactory } = {};
    const counter = count();
    const chain = networkServiceChain('t', [beginClient(), stateful(cap), injectError({ closes: [0] }), counter]);
    await chain.request(defaultRequest({ id: 'nsc-2' }), newContext());
    await cap.events!.request({ reselect: true });
    assert.equal(counter.requests, 2);
    assert.equal(counter.closes, 0);
  });

  it('merges a re-request with the stored connection (keeps the chain mechanism, takes a changed endpoint name)', async () => {
    const seen: NetworkServiceRequest[] = [];
    const chain = networkServiceChain('t', [
      beginClient(),
      checkRequest((r) => void seen.push(structuredClone(r))),
      {
        name: 'endpoint',
        request: async (r) => ({ ...r.connection!, mechanism: r.connection!.mechanism ?? { cls: 'LOCAL', type: 'KERNEL', parameters: { name: 'nsm-1' } } }),
        close: async () => {},
      },
    ]);
    const req = defaultRequest({ id: 'nsc-3' });
    const conn = await chain.request(req, newContext());
    await chain.request(req, newContext()); // caller re-sends its original request (no mechanism)
    assert.equal(seen[1].connection!.mechanism?.parameters.name, 'nsm-1');
    await chain.request({ ...req, connection: { ...conn, networkServiceEndpointName: 'nse-2' } }, newContext());
    assert.equal(seen[2].connection!.networkServiceEndpointName, 'nse-2');
  });
});
