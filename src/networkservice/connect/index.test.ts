import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MD_CLIENT_TOKEN, MD_CLIENT_TOKEN_EXPIRES } from '../../api/constants.js';
import { ConnectionEventType, MonitorConnectionDefinition, type Connection } from '../../api/gen/connection.js';
import { NetworkServiceDefinition } from '../../api/gen/networkservice.js';
import { networkServiceChain, passThrough, type NetworkServiceElement } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { networkServiceService } from '../../core/edge.js';
import { AlreadyExistsError, NotFoundError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { hs256TokenGenerator, parseRfc3339Nano } from '../../core/token.js';
import { ChannelPool, createClient, serve, type GrpcServer } from '../../core/transport.js';
import { checkRequest } from '../../testing/check-request.js';
import { count } from '../../testing/count.js';
import { injectError } from '../../testing/inject-error.js';
import { defaultRequest } from '../../testing/requests.js';
import { beginClient, beginServer } from '../begin/index.js';
import { MonitorService, monitorServer } from '../monitor/index.js';
import { updatePathClient, updatePathServer } from '../update-path/index.js';
import { CLIENT_URL } from '../client-url/index.js';
import { CONNECTED_URL, connectServer, monitorClientFactory } from './index.js';
import { INSECURE } from '../../security/tls.js';

describe('connect server (real gRPC on a unix socket)', () => {
  let dir: string;
  let url: string;
  let server: GrpcServer;
  const pool = new ChannelPool(INSECURE);
  const tokens = hs256TokenGenerator();
  const remoteMd: Array<Record<string, string>> = [];
  const remoteCount = count('remote-count');
  const remoteMonitor = new MonitorService();
  const remoteBehaviour: { failRequest: boolean; failClose: boolean; failRequestWith?: Error; answered?: () => void } = { failRequest: false, failClose: false };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsm-connect-'));
    url = `unix://${join(dir, 'nse.sock')}`;
    const remote = networkServiceChain('remote', [
      updatePathServer({ name: 'nse' }),
      beginServer(),
      checkRequest((_req, ctx) => void remoteMd.push({ ...ctx.metadata })),
      monitorServer({ monitor: remoteMonitor }),
      remoteCount,
      passThrough('behaviour', {
        async request(req, ctx, next) {
          if (remoteBehaviour.failRequest) throw new NotFoundError('no such network service');
          if (remoteBehaviour.failRequestWith) throw remoteBehaviour.failRequestWith;
          const out = await next.request(req, ctx);
          if (remoteBehaviour.answered) {
            // The caller goes away after the remote set the connection up, before the answer reaches it.
            remoteBehaviour.answered();
            await new Promise((r) => setTimeout(r, 50));
          }
          return out;
        },
        async close(conn, ctx, next) {
          if (remoteBehaviour.failClose) throw new Error('remote close exploded');
          return next.close(conn, ctx);
        },
      }),
    ]);
    server = await serve([url], [
      { definition: NetworkServiceDefinition, implementation: networkServiceService(remote, silentLogger) },
      { definition: MonitorConnectionDefinition, implementation: remoteMonitor },
    ], INSECURE);
  });

  after(async () => {
    pool.close();
    remoteMonitor.stop();
    await server.stop({ force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  function local(opts: { next?: NetworkServiceElement[]; url?: () => string | undefined; dialTimeout?: number } = {}) {
    const localCount = count('local-count');
    const begin = beginServer();
    const chain = networkServiceChain('local', [
      updatePathServer({ name: 'nsmgr' }),
      begin,
      passThrough('discover', {
        async request(req, ctx, next) {
          const u = (opts.url ?? (() => url))();
          if (u) ctx.state.set(CLIENT_URL, u);
          else ctx.state.delete(CLIENT_URL);
          return next.request(req, ctx);
        },
      }),
      checkRequest(() => {}),
      connectServer({ pool, tokens }, { dialTimeout: opts.dialTimeout ?? 2000, clientChain: [updatePathClient({ name: 'nsmgr' }), beginClient()] }),
      ...(opts.next ?? []),
      localCount,
    ]);
    return { chain, begin, localCount };
  }

  const nscRequest = (id: string) => defaultRequest({ id, pathSegments: [{ name: 'nsc', id }] });

  it('forwards the Request with token metadata and returns the remote connection', async () => {
    let connectedUrl: string | undefined;
    const { chain, localCount } = local({ next: [checkRequest((_r, ctx) => void (connectedUrl = ctx.state.get(CONNECTED_URL)))] });
    remoteMd.length = 0;
    const conn = await chain.request(nscRequest('nsc-1'), newContext());
    assert.deepEqual(conn.path!.pathSegments.map((s) => s.name), ['nsc', 'nsmgr', 'nse']);
    assert.equal(conn.path!.index, 0);
    assert.equal(conn.id, 'nsc-1');
    assert.equal(connectedUrl, url);
    assert.equal(localCount.requests, 1);
    const md = remoteMd[0];
    await tokens.verify(md[MD_CLIENT_TOKEN]);
    assert.ok(parseRfc3339Nano(md[MD_CLIENT_TOKEN_EXPIRES]).getTime() > Date.now());
    await chain.close(conn, newContext());
  });

  it('maps remote errors to our classes', async () => {
    const { chain, begin } = local();
    remoteBehaviour.failRequest = true;
    try {
      await assert.rejects(chain.request(nscRequest('nsc-2'), newContext()), { name: 'NotFoundError' });
    } finally {
      remoteBehaviour.failRequest = false;
    }
    assert.equal(begin.size, 0);
  });

  it('Close uses the remembered URL and succeeds locally when the remote Close fails', async () => {
    let current: string | undefined = url;
    const { chain, localCount } = local({ url: () => current });
    const conn = await chain.request(nscRequest('nsc-3'), newContext());
    const before = remoteCount.closes;
    current = undefined; // discover no longer knows the URL
    await chain.close(conn, newContext());
    assert.equal(remoteCount.closes, before + 1);
    assert.equal(localCount.closes, 1);

    current = url;
    const conn2 = await chain.request(nscRequest('nsc-4'), newContext());
    remoteBehaviour.failClose = true;
    try {
      await chain.close(conn2, newContext());
    } finally {
      remoteBehaviour.failClose = false;
    }
    assert.equal(localCount.closes, 2);
  });

  it('a Close whose caller already went away still closes the remote connection (own deadline)', async () => {
    const { chain, localCount } = local();
    const conn = await chain.request(nscRequest('nsc-7'), newContext());
    const before = remoteCount.closes;
    const gone = new AbortController();
    gone.abort();
    await chain.close(conn, newContext({ signal: gone.signal }));
    assert.equal(remoteCount.closes, before + 1);
    assert.equal(localCount.closes, 1);
  });

  it('a first Request whose caller went away while the remote answered: the remote connection is Closed all the same', async () => {
    const { chain, begin } = local();
    const caller = new AbortController();
    const [requests, closes] = [remoteCount.requests, remoteCount.closes];
    remoteBehaviour.answered = () => caller.abort();
    try {
      await assert.rejects(chain.request(nscRequest('nsc-9'), newContext({ signal: caller.signal })));
    } finally {
      remoteBehaviour.answered = undefined;
    }
    assert.equal(remoteCount.requests, requests + 1, 'the remote set the connection up');
    assert.equal(remoteCount.closes, closes + 1, 'and closed it again');
    assert.equal(begin.size, 0);
  });

  it('ALREADY_EXISTS from the next hop stays AlreadyExistsError', async () => {
    const { chain } = local({ next: [] });
    remoteBehaviour.failRequestWith = new AlreadyExistsError('nsc interface nsm-1 already exists in netns x: it belongs to connection c0');
    try {
      await assert.rejects(chain.request(nscRequest('nsc-8'), newContext()), (e: Error) => e instanceof AlreadyExistsError && e.message.includes('belongs to connection c0'));
    } finally {
      remoteBehaviour.failRequestWith = undefined;
    }
  });

  it('closes the remote connection when the rest of the server chain fails', async () => {
    const { chain } = local({ next: [injectError({ requests: [0] })] });
    const before = remoteCount.closes;
    await assert.rejects(chain.request(nscRequest('nsc-5'), newContext()), { name: 'UnavailableError' });
    assert.equal(remoteCount.closes, before + 1);
  });

  it('fails with NotFoundError without a URL and UnavailableError when the peer is unreachable', async () => {
    await assert.rejects(local({ url: () => undefined }).chain.request(nscRequest('nsc-6'), newContext()), { name: 'NotFoundError' });
    const dead = `unix://${join(dir, 'nobody.sock')}`;
    await assert.rejects(local({ url: () => dead, dialTimeout: 100 }).chain.request(nscRequest('nsc-7'), newContext()), { name: 'UnavailableError' });
    pool.drop(dead);
  });

  it('monitorClientFactory streams the peer monitor with token metadata', async () => {
    const { chain } = local();
    const conn: Connection = await chain.request(nscRequest('nsc-8'), newContext());
    const ac = new AbortController();
    const client = monitorClientFactory({ pool, tokens })(url);
    const nsmgrSeg = conn.path!.pathSegments[1];
    const it = client.monitorConnections({ pathSegments: [{ id: nsmgrSeg.id, name: nsmgrSeg.name }] }, { signal: ac.signal })[Symbol.asyncIterator]();
    const first = await it.next();
    assert.equal(first.value.type, ConnectionEventType.INITIAL_STATE_TRANSFER);
    const conns = Object.values(first.value.connections) as Connection[];
    assert.equal(conns.length, 1);
    assert.equal(conns[0].path!.pathSegments[2].name, 'nse');
    await chain.close(conn, newContext());
    const del = await it.next();
    assert.equal(del.value.type, ConnectionEventType.DELETE);
    ac.abort();
    await assert.rejects(it.next());
  });

  it('monitor passthrough over gRPC: a downstream DELETE surfaces as DOWN at this hop', async () => {
    const localMonitor = new MonitorService();
    const chain = networkServiceChain('local-pt', [
      updatePathServer({ name: 'nsmgr' }),
      beginServer(),
      monitorServer({ monitor: localMonitor, monitorClient: monitorClientFactory({ pool, tokens }) }),
      passThrough('discover', { request: (req, ctx, next) => (ctx.state.set(CLIENT_URL, url), next.request(req, ctx)) }),
      connectServer({ pool, tokens }, { clientChain: [updatePathClient({ name: 'nsmgr' })] }),
    ]);
    const conn = await chain.request(nscRequest('nsc-9'), newContext());
    const myId = conn.path!.pathSegments[1].id;
    assert.equal(localMonitor.get(myId)!.state, 0 /* UP */);
    await until(() => remoteMonitor.subscribers > 0);
    // Someone closes the connection at the NSE directly (as the nsmgr would).
    const remote = createClient(NetworkServiceDefinition, pool.get(url));
    await remote.close({ ...conn, id: myId, path: { ...conn.path!, index: 1 } });
    await until(() => localMonitor.get(myId)?.state === 1 /* DOWN */);
    await chain.close(conn, newContext());
    await until(() => remoteMonitor.subscribers === 0);
    localMonitor.stop();
  });
});

async function until(cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail('condition not reached within 5 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}
