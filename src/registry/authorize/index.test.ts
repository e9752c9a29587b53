import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Metadata as GrpcMetadata } from '@grpc/grpc-js';
import { MD_REGISTRY_PATH } from '../../api/constants.js';
import {
  NetworkServiceEndpoint,
  NetworkServiceEndpointRegistryDefinition,
  NetworkServiceRegistryDefinition,
  type NetworkServiceEndpointQuery,
  type NetworkServiceEndpointResponse,
} from '../../api/gen/registry.js';
import { registryChain, registryPassThrough, type NsElement, type NseElement } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { nseRegistryService, nsRegistryService } from '../../core/edge.js';
import { clientTokenMetadata } from '../../core/token.js';
import { ChannelPool, grpcTarget, serve, type GrpcServer } from '../../core/transport.js';
import { decodeRegistryPath } from '../../security/registry-path.js';
import { channelCredentials } from '../../security/tls.js';
import { decodeToken, signToken, tokenRequestFor } from '../../security/token.js';
import { capturedLog, testIdentity, type TestIdentity } from '../../testing/secure-hop.js';
import { nseRegistryClient } from '../client/index.js';
import { nseConnectClient } from '../connect/index.js';
import { memoryRegistryStore } from '../memory/index.js';
import { nsmgrRegistryChains } from '../nsmgr-chain.js';
import { storeNseServer, storeNsServer } from '../store/index.js';
import { REGISTRY_PATH, updatePathRegistryServer } from '../update-path/index.js';
import { validateNseServer, validateNsServer } from '../validate/index.js';
import { authorizeRegistryServer } from './index.js';

const TD = 'spiffe://reg-authz.test';
const registryId = testIdentity(`${TD}/registry`);
const nsmgrId = testIdentity(`${TD}/nsmgr`);
const owner = testIdentity(`${TD}/ns/pod-a/nse`);
const other = testIdentity(`${TD}/ns/pod-b/nse`);

describe('registry path and authorize over real gRPC and mTLS (NSE → nsmgr → registry)', () => {
  let dir: string;
  let registryUrl: string;
  let nsmgrUrl: string;
  const servers: GrpcServer[] = [];
  const pools: ChannelPool[] = [];
  const store = memoryRegistryStore();
  const registryLog = capturedLog('info');
  const nsmgrLog = capturedLog('info');
  const tamper = { answer: false };
  /** A man in the middle: the registry's own segment of the answered path re-signed with another key. */
  const tamperer = registryPassThrough<NetworkServiceEndpoint, NetworkServiceEndpointQuery, NetworkServiceEndpointResponse>('tamper', {
    async register(item, ctx, next) {
      const out = await next.register(item, ctx);
      const path = ctx.state.get(REGISTRY_PATH)!;
      if (tamper.answer) {
        const forged = signToken({ sub: registryId.spiffeId, aud: [owner.spiffeId], exp: Math.floor(Date.now() / 1000) + 60 }, testIdentity(registryId.spiffeId).svid.privateKey);
        ctx.state.set(REGISTRY_PATH, { index: path.index, segments: path.segments.map((s, i) => (i === path.index ? { token: forged } : s)) });
      }
      return out;
    },
  });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsm-reg-authz-'));
    registryUrl = `unix://${join(dir, 'registry.sock')}`;
    nsmgrUrl = `unix://${join(dir, 'nsmgr.sock')}`;
    const nseStore = storeNseServer({ store });
    const nsStore = storeNsServer({ store });
    const secure = { insecure: false };
    const nseChain: NseElement[] = [validateNseServer(), updatePathRegistryServer({ tokens: registryId.tokens }, secure), authorizeRegistryServer({ registrants: async (name) => (await store.nse.get(name))?.pathIds }, secure), tamperer, nseStore];
    const nsChain: NsElement[] = [validateNsServer(), updatePathRegistryServer({ tokens: registryId.tokens }, secure), authorizeRegistryServer({}, secure), nsStore];
    servers.push(
      await serve([registryUrl], [
        { definition: NetworkServiceEndpointRegistryDefinition, implementation: nseRegistryService(registryChain('registry-nse', nseChain), registryLog.log) },
        { definition: NetworkServiceRegistryDefinition, implementation: nsRegistryService(registryChain('registry-ns', nsChain), registryLog.log) },
      ], registryId.security),
    );
    const nsmgrPool = new ChannelPool(nsmgrId.security);
    pools.push(nsmgrPool);
    const chains = nsmgrRegistryChains({ registryUrl, pool: nsmgrPool, labels: {}, log: nsmgrLog.log, insecure: false, tokens: nsmgrId.tokens }, { dialTimeout: 5000 });
    servers.push(
      await serve([nsmgrUrl], [
        { definition: NetworkServiceEndpointRegistryDefinition, implementation: nseRegistryService(chains.nse, nsmgrLog.log) },
        { definition: NetworkServiceRegistryDefinition, implementation: nsRegistryService(chains.ns, nsmgrLog.log) },
      ], nsmgrId.security),
    );
  });

  after(async () => {
    for (const p of pools) p.close();
    for (const s of servers) await s.stop({ force: true });
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** `who`'s registry client chain to `url` (just connect, as the NSE's ends), sending `who`'s tokens. */
  function clientOf(who: TestIdentity, url: string) {
    const pool = new ChannelPool(who.security);
    pools.push(pool);
    return registryChain('nse-client', [nseConnectClient({ pool, url, tokens: who.tokens }, { dialTimeout: 5000 })]);
  }
  const nse = (name: string) => NetworkServiceEndpoint.fromPartial({ name, networkServiceNames: ['svc'], url: 'unix:///run/nse.sock' });
  const subs = (path: { segments: readonly { token: string }[] }) => path.segments.map((s) => decodeToken(s.token).payload.sub);

  it('direct to the registry: path_ids from the tokens, the path in the response header', async () => {
    const ctx = newContext();
    const got = await clientOf(owner, registryUrl).register(nse('direct-1'), ctx);
    assert.deepEqual(got.pathIds, [owner.spiffeId, registryId.spiffeId]);
    assert.deepEqual((await store.nse.get('direct-1'))?.pathIds, [owner.spiffeId, registryId.spiffeId]);
    const answered = ctx.state.get(REGISTRY_PATH)!;
    assert.equal(answered.index, 0, 'the index restored to the caller');
    assert.deepEqual(subs(answered), [owner.spiffeId, registryId.spiffeId]);
    assert.deepEqual(decodeToken(answered.segments[1].token).payload.aud, [owner.spiffeId]);
    await clientOf(owner, registryUrl).unregister(nse('direct-1'), newContext());
  });

  it('the `path` response header reaches a plain grpc-js client', async () => {
    const client = new Client(grpcTarget(registryUrl), channelCredentials(owner.security, { target: registryUrl }));
    try {
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 5000, (err) => (err ? reject(err) : resolve())));
      const md = new GrpcMetadata();
      const issued = owner.tokens.issue(tokenRequestFor(registryId.svid.leaf));
      for (const [k, v] of Object.entries(clientTokenMetadata(issued))) md.set(k, v);
      md.set(MD_REGISTRY_PATH, JSON.stringify({ Index: 0, PathSegments: [] }));
      const header = await new Promise<GrpcMetadata>((resolve, reject) => {
        let seen: GrpcMetadata | undefined;
        const call = client.makeUnaryRequest(
          '/registry.NetworkServiceEndpointRegistry/Register',
          (m: NetworkServiceEndpoint) => Buffer.from(NetworkServiceEndpoint.encode(m).finish()),
          (b: Buffer) => NetworkServiceEndpoint.decode(b),
          nse('raw-1'),
          md,
          (err) => (err ? reject(err) : seen ? resolve(seen) : reject(new Error('no header'))),
        );
        call.on('metadata', (m) => void (seen = m));
      });
      const path = decodeRegistryPath(String(header.get(MD_REGISTRY_PATH)[0]))!;
      assert.equal(path.index, 0);
      assert.deepEqual(subs(path), [owner.spiffeId, registryId.spiffeId]);
    } finally {
      client.close();
    }
    await clientOf(owner, registryUrl).unregister(nse('raw-1'), newContext());
  });

  it('through nsmgr: path_ids of every hop; another identity may not unregister (refused at nsmgr), the owner may', async () => {
    const ctx = newContext();
    await clientOf(owner, nsmgrUrl).register(nse('via-1'), ctx);
    assert.deepEqual((await store.nse.get('via-1'))?.pathIds, [owner.spiffeId, nsmgrId.spiffeId, registryId.spiffeId]);
    const answered = ctx.state.get(REGISTRY_PATH)!;
    assert.equal(answered.index, 0);
    assert.deepEqual(subs(answered), [owner.spiffeId, nsmgrId.spiffeId, registryId.spiffeId]);

    const logged = nsmgrLog.lines().length;
    await assert.rejects(clientOf(other, nsmgrUrl).unregister(nse('via-1'), newContext()), (err: Error) => {
      assert.equal(err.name, 'PermissionDeniedError');
      assert.match(err.message, /policy registry_client_allowed refused path segment 0/);
      assert.match(err.message, new RegExp(other.spiffeId));
      return true;
    });
    assert.ok(await store.nse.get('via-1'), 'still registered');
    assert.equal(nsmgrLog.lines().slice(logged).filter((l) => l.msg === 'permission denied by policy').length, 1);
    await assert.rejects(clientOf(other, nsmgrUrl).register(nse('via-1'), newContext()), { name: 'PermissionDeniedError' }, 'nor refresh it');

    await clientOf(owner, nsmgrUrl).register(nse('via-1'), newContext()); // a refresh by the owner
    await clientOf(owner, nsmgrUrl).unregister(nse('via-1'), newContext());
    assert.equal(await store.nse.get('via-1'), undefined);
    await clientOf(other, nsmgrUrl).register(nse('via-1'), newContext()); // a free name again
    await clientOf(other, nsmgrUrl).unregister(nse('via-1'), newContext());
  });

  it('direct to the registry: another identity unregistering is refused there too', async () => {
    await clientOf(owner, registryUrl).register(nse('direct-2'), newContext());
    await assert.rejects(clientOf(other, registryUrl).unregister(nse('direct-2'), newContext()), { name: 'PermissionDeniedError' });
    await clientOf(owner, registryUrl).unregister(nse('direct-2'), newContext());
  });

  it('a token signed by another key than the caller certificate: prev_token_signed', async () => {
    const pool = new ChannelPool(owner.security);
    pools.push(pool);
    const forged = registryChain('forged', [nseConnectClient({ pool, url: registryUrl, tokens: testIdentity(owner.spiffeId).tokens }, { dialTimeout: 5000 })]);
    await assert.rejects(forged.register(nse('forged-1'), newContext()), (err: Error) => /policy prev_token_signed refused path segment 0/.test(err.message));
    assert.equal(await store.nse.get('forged-1'), undefined);
  });

  it('the NSE registry client checks the answered path: accepted as signed, refused when the server token is not the server key (next_token_signed)', async () => {
    const pool = new ChannelPool(owner.security);
    pools.push(pool);
    const client = nseRegistryClient({ pool, url: registryUrl, tokens: owner.tokens });
    const got = await client.register(nse('client-1'), newContext());
    assert.deepEqual(got.pathIds, [owner.spiffeId, registryId.spiffeId]);
    tamper.answer = true;
    try {
      await assert.rejects(client.register(nse('client-1'), newContext()), { name: 'PermissionDeniedError', policy: 'next_token_signed', segment: 1 });
    } finally {
      tamper.answer = false;
    }
    await client.unregister(nse('client-1'), newContext());
  });

  it('the registry reads the registrant from its store: a name whose registration expired is free; one recorded without path_ids has no registrant', async () => {
    await clientOf(owner, registryUrl).register(nse('free-1'), newContext());
    await assert.rejects(clientOf(other, registryUrl).register(nse('free-1'), newContext()), { name: 'PermissionDeniedError' });
    await store.nse.delete('free-1'); // what expiry does
    const got = await clientOf(other, registryUrl).register(nse('free-1'), newContext());
    assert.deepEqual(got.pathIds, [other.spiffeId, registryId.spiffeId]);
    await clientOf(other, registryUrl).unregister(nse('free-1'), newContext());

    await store.nse.put(nse('applied-1')); // e.g. a custom resource applied by hand
    await clientOf(other, registryUrl).register(nse('applied-1'), newContext());
    await assert.rejects(clientOf(owner, registryUrl).unregister(nse('applied-1'), newContext()), { name: 'PermissionDeniedError' }, 'now it has one');
    await clientOf(other, registryUrl).unregister(nse('applied-1'), newContext());
  });
});
