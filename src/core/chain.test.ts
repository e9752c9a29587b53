import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { checkOrder, elementLog, networkServiceChain, passThrough, registryChain, registryPassThrough } from './chain.js';
import { newContext, withContext } from './context.js';
import { ChainOrderError } from './errors.js';
import { createLogger, type Logger } from './log.js';

/** A debug logger whose lines are kept raw, so duplicate keys would show. */
function capture(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { log: createLogger('test', 'debug', out), lines };
}

const flush = () => new Promise((r) => setImmediate(r));
const elementKeys = (line: string) => line.match(/"element":/g)?.length ?? 0;

describe('chain order', () => {
  it('checks requires when built and names the element and the missing capability', () => {
    assert.throws(
      () => checkOrder('c', [{ name: 'a', requires: ['b'] }, { name: 'b' }]),
      (err: Error) => err instanceof ChainOrderError && /"a" requires "b"/.test(err.message),
    );
    assert.doesNotThrow(() => checkOrder('c', [{ name: 'b', provides: ['x'] }, { name: 'a', requires: ['x'] }]));
    assert.doesNotThrow(() => checkOrder('c', [{ name: 'a', requires: ['given'] }], ['given']));
  });
});

describe('chain element loggers', () => {
  it('each element logs with its own name bound, once', async () => {
    const { log, lines } = capture();
    const logs = (name: string) =>
      passThrough(name, {
        request: (req, ctx, next) => (ctx.log.debug('in request'), next.request(req, ctx)),
        close: (conn, ctx, next) => (ctx.log.debug('in close'), next.close(conn, ctx)),
      });
    const chain = networkServiceChain('t', [logs('a'), passThrough('quiet'), logs('b')]);
    await chain.request({ connection: { id: 'c1' } } as never, newContext({ log }));
    await chain.close({ id: 'c1' } as never, newContext({ log }));
    await flush();
    const got = lines.map((l) => JSON.parse(l) as { element: string; msg: string });
    assert.deepEqual(
      got.map((l) => `${l.element}:${l.msg}`),
      ['a:in request', 'b:in request', 'a:in close', 'b:in close'],
    );
    for (const l of lines) assert.equal(elementKeys(l), 1, l);
  });

  it('bindings an element adds (begin adding connId) reach later elements without its element name', async () => {
    const { log, lines } = capture();
    const begin = passThrough('begin', {
      request: (req, ctx, next) => {
        const connLog = ctx.log.child({ connId: 'c1' });
        connLog.info('begin line');
        return next.request(req, withContext(ctx, { log: connLog }));
      },
    });
    const after = passThrough('after', { request: (req, ctx, next) => (ctx.log.info('after line'), next.request(req, ctx)) });
    await networkServiceChain('t', [begin, after]).request({ connection: { id: 'c1' } } as never, newContext({ log }));
    await flush();
    assert.equal(lines.length, 2);
    for (const l of lines) assert.equal(elementKeys(l), 1, l);
    const pick = (l: string) => (({ element, connId, msg }) => ({ element, connId, msg }))(JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map(pick), [
      { element: 'begin', connId: 'c1', msg: 'begin line' },
      { element: 'after', connId: 'c1', msg: 'after line' },
    ]);
  });

  it('hands the same logger to an element for the same caller logger (made once)', async () => {
    const seen: Logger[] = [];
    const el = passThrough('x', { request: (req, ctx, next) => (seen.push(ctx.log), next.request(req, ctx)) });
    const chain = networkServiceChain('t', [el]);
    const { log } = capture();
    for (let i = 0; i < 3; i++) await chain.request({ connection: { id: 'c' } } as never, newContext({ log }));
    assert.equal(seen.length, 3);
    assert.ok(seen[0] === seen[1] && seen[1] === seen[2]);
    assert.notEqual(seen[0], log);
    const again = elementLog(seen[0], 'y');
    assert.equal((again as unknown as { bindings(): Record<string, unknown> }).bindings().element, 'y', 'derived from the caller, not nested');
  });

  it('keeps the rest of the context (signal, state, metadata, deadline, events)', async () => {
    const init = newContext({ deadline: 42, metadata: { a: 'b' } });
    let got: ReturnType<typeof newContext> | undefined;
    const el = passThrough('x', { request: (req, ctx, next) => ((got = ctx), next.request(req, ctx)) });
    await networkServiceChain('t', [el]).request({ connection: { id: 'c' } } as never, init);
    assert.ok(got);
    assert.equal(got.signal, init.signal);
    assert.equal(got.state, init.state);
    assert.equal(got.deadline, 42);
    assert.equal(got.metadata, init.metadata);
    assert.equal(got.events, init.events);
  });

  it('registry chains bind the element too, for register, find and unregister', async () => {
    const { log, lines } = capture();
    const el = registryPassThrough<{ name: string }, object, object>('reg', {
      register: (item, ctx, next) => (ctx.log.debug('register'), next.register(item, ctx)),
      find: (q, ctx, next) => (ctx.log.debug('find'), next.find(q, ctx)),
      unregister: (item, ctx, next) => (ctx.log.debug('unregister'), next.unregister(item, ctx)),
    });
    const chain = registryChain('r', [registryPassThrough('first'), el]);
    await chain.register({ name: 'n' }, newContext({ log }));
    for await (const _ of chain.find({}, newContext({ log })));
    await chain.unregister({ name: 'n' }, newContext({ log }));
    await flush();
    assert.deepEqual(
      lines.map((l) => JSON.parse(l) as { element: string; msg: string }).map((l) => `${l.element}:${l.msg}`),
      ['reg:register', 'reg:find', 'reg:unregister'],
    );
  });
});
