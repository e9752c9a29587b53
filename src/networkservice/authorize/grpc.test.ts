import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MD_CLIENT_TOKEN } from '../../api/constants.js';
import { NetworkServiceDefinition } from '../../api/gen/networkservice.js';
import { networkServiceChain, passThrough } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { networkServiceService } from '../../core/edge.js';
import { ChannelPool, serve, type GrpcServer } from '../../core/transport.js';
import { decodeToken, signToken, verifyToken } from '../../security/token.js';
import { checkRequest } from '../../testing/check-request.js';
import { count } from '../../testing/count.js';
import { defaultRequest } from '../../testing/requests.js';
import { capturedLog, testIdentity, type TestIdentity } from '../../testing/secure-hop.js';
import { makeTestSvid } from '../../testing/svid.js';
import { beginClient, beginServer } from '../begin/index.js';
import { clientUrl } from '../client-url/index.js';
import { connectServer } from '../connect/index.js';
import { updatePathClient, updatePathServer } from '../update-path/index.js';
import { updateTokenServer } from '../update-token/index.js';
import { authorizeClient, authorizeServer } from './index.js';

describe('authorize over real gRPC and mTLS (NSC chain → nsmgr)', () => {
  const nsc = testIdentity('spiffe://authz-grpc.test/ns/pod-1/nsc');
  const nsmgr = testIdentity('spiffe://authz-grpc.test/nsmgr');
  const forger = testIdentity('spiffe://authz-grpc.test/nsmgr'); // nsmgr's ID, another key
  const serverLog = capturedLog('info');
  const working = count('working'); // stands for everything after authorize (IPAM, xconnect, connect …)
  const seen: Array<Record<string, string>> = [];
  const tamper = { nextToken: false };
  let dir: string;
  let url: string;
  let server: GrpcServer;
  const pools: ChannelPool[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsm-authz-'));
    url = `unix://${join(dir, 'nsmgr.sock')}`;
    const chain = networkServiceChain('nsmgr', [
      updatePathServer({ name: 'nsmgr' }),
      beginServer(),
      updateTokenServer({ tokens: nsmgr.tokens }),
      authorizeServer({}, { insecure: false }),
      checkRequest((_r, ctx) => void seen.push({ ...ctx.metadata })),
      working,
      passThrough('tamper', {
        async request(req, ctx, next) {
          const conn = await next.request(req, ctx);
          // a man in the middle: this hop's token re-signed with a key that is not the server's
          if (tamper.nextToken) conn.path!.pathSegments[1].token = signToken({ sub: nsmgr.spiffeId, aud: [nsc.spiffeId], exp: Math.floor(Date.now() / 1000) + 60 }, forger.svid.privateKey);
          return conn;
        },
      }),
    ]);
    server = await serve([url], [{ definition: NetworkServiceDefinition, implementation: networkServiceService(chain, serverLog.log) }], nsmgr.security);
  });

  after(async () => {
    for (const p of pools) p.close();
    await server.stop({ force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  /** The NSC's chain as components/nsc has it (without heal/refresh/mechanisms), as `who` with `tokensOf`'s tokens. */
  function client(who: TestIdentity, tokensOf: TestIdentity = who) {
    const pool = new ChannelPool(who.security);
    pools.push(pool);
    return networkServiceChain('nsc', [
      updatePathClient({ name: 'nsc' }),
      beginClient(),
      authorizeClient({ pool }, { insecure: false }),
      clientUrl(url),
      connectServer({ pool, tokens: tokensOf.tokens }, { dialTimeout: 5000 }),
    ]);
  }

  it('a valid chain: the token sent is for the server the handshake found; both hops accept', async () => {
    const chain = client(nsc);
    const before = working.requests;
    const conn = await chain.request(defaultRequest({ id: 'grpc-ok' }), newContext());
    assert.equal(working.requests, before + 1);
    const sent = decodeToken(seen.at(-1)![MD_CLIENT_TOKEN]).payload;
    assert.equal(sent.sub, nsc.spiffeId);
    assert.deepEqual(sent.aud, [nsmgr.spiffeId], 'aud from the server certificate of the mTLS handshake');
    const [seg0, seg1] = conn.path!.pathSegments;
    assert.equal(decodeToken(seg0.token).payload.sub, nsc.spiffeId);
    assert.deepEqual(decodeToken(seg1.token).payload.aud, [nsc.spiffeId]);
    await chain.close(conn, newContext());
  });

  it('a caller with a real SVID and a token signed by another key: PERMISSION_DENIED naming policy and segment; nothing after authorize ran', async () => {
    const chain = client(nsc, testIdentity(nsc.spiffeId));
    const before = working.requests;
    const logged = serverLog.lines().length;
    await assert.rejects(chain.request(defaultRequest({ id: 'grpc-forged' }), newContext()), (err: Error) => {
      assert.equal(err.name, 'PermissionDeniedError');
      assert.match(err.message, /policy prev_token_signed refused path segment 0 \(nsc\)/);
      return true;
    });
    assert.equal(working.requests, before);
    const refusals = serverLog.lines().slice(logged).filter((l) => l.msg === 'permission denied by policy');
    assert.equal(refusals.length, 1, 'logged once, at the refusing hop');
  });

  it('the client refuses an answer whose next token the server did not sign (next_token_signed) and closes it', async () => {
    const chain = client(nsc);
    const closes = working.closes;
    tamper.nextToken = true;
    try {
      await assert.rejects(chain.request(defaultRequest({ id: 'grpc-mitm' }), newContext()), { name: 'PermissionDeniedError', policy: 'next_token_signed', segment: 1 });
    } finally {
      tamper.nextToken = false;
    }
    assert.equal(working.closes, closes + 1, 'the refused connection was closed at the server');
  });

  it('SVID rotation on both sides: tokens are signed with the SVID each connection presented; new calls renew the connection', async () => {
    const pool = new ChannelPool(nsc.security);
    pools.push(pool);
    const chain = networkServiceChain('nsc', [
      updatePathClient({ name: 'nsc' }),
      beginClient(),
      authorizeClient({ pool }, { insecure: false }),
      clientUrl(url),
      connectServer({ pool, tokens: nsc.tokens }, { dialTimeout: 5000 }),
    ]);
    const conn = await chain.request(defaultRequest({ id: 'grpc-rotate' }), newContext());
    const before = pool.serverIdentity(url)!;
    // the server rotates first: the client's connection still holds its old certificate
    nsmgr.source.rotate(makeTestSvid(nsmgr.spiffeId));
    const refreshed = await chain.request({ connection: conn, mechanismPreferences: [] }, newContext());
    assert.equal(pool.serverIdentity(url)!.certificate.fingerprint256, before.certificate.fingerprint256, 'the same connection');
    assert.doesNotThrow(() => verifyToken(refreshed.path!.pathSegments[1].token, before.certificate), "nsmgr's token signed with the SVID it presented on that connection");
    // then the client: its next call goes on a new connection that presents its new SVID
    nsc.source.rotate(makeTestSvid(nsc.spiffeId));
    const again = await chain.request({ connection: refreshed, mechanismPreferences: [] }, newContext());
    const after = pool.serverIdentity(url)!;
    assert.notEqual(after.certificate.fingerprint256, before.certificate.fingerprint256, 'a new handshake: the server presents its new SVID');
    assert.equal(after.presented, nsc.source.current().svid, 'and the client its new one');
    assert.doesNotThrow(() => verifyToken(again.path!.pathSegments[0].token, nsc.source.current().svid.leaf), "the NSC's token signed with its new key");
    await chain.close(again, newContext());
  });
});
