import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { makeTestSvid } from '../testing/svid.js';
import { authorizeRegistryClient, authorizeRegistryServer } from './policies.js';
import { decodeRegistryPath, encodeRegistryPath, registryPathIds, updatePathIds, updateRegistryPath, type RegistryPath } from './registry-path.js';
import { signToken } from './token.js';

const ID = { nse: 'spiffe://test.nsm/nse', nsmgr: 'spiffe://test.nsm/nsmgr', registry: 'spiffe://test.nsm/registry' };
const svid = { nse: makeTestSvid(ID.nse), nsmgr: makeTestSvid(ID.nsmgr), registry: makeTestSvid(ID.registry) };
const EXP = Math.floor(Date.now() / 1000) + 600;
const tok = (who: keyof typeof ID, aud: keyof typeof ID) => signToken({ sub: ID[who], aud: [ID[aud]], exp: EXP }, svid[who].privateKey);

describe('registry path metadata', () => {
  it('encodes as Go marshals upstream’s struct: Index, PathSegments, token', () => {
    assert.equal(encodeRegistryPath({ index: 1, segments: [{ token: 'a' }, { token: 'b' }] }), '{"Index":1,"PathSegments":[{"token":"a"},{"token":"b"}]}');
    assert.equal(encodeRegistryPath({ index: 0, segments: [] }), '{"Index":0,"PathSegments":[]}');
  });

  it('decodes what upstream sends, as Go’s decoder would', () => {
    const rows: { name: string; value: string; want: RegistryPath }[] = [
      { name: 'upstream first registration (nil slice)', value: '{"Index":0,"PathSegments":null}', want: { index: 0, segments: [] } },
      { name: 'two segments', value: '{"Index":1,"PathSegments":[{"token":"a"},{"token":"b"}]}', want: { index: 1, segments: [{ token: 'a' }, { token: 'b' }] } },
      { name: 'field names in any case', value: '{"index":1,"pathSegments":[{"Token":"a"},{"TOKEN":"b"}]}', want: { index: 1, segments: [{ token: 'a' }, { token: 'b' }] } },
      { name: 'unknown fields ignored (e.g. a future expires)', value: '{"Index":0,"PathSegments":[{"token":"a","expires":"2030-01-01T00:00:00Z"}],"x":1}', want: { index: 0, segments: [{ token: 'a' }] } },
      { name: 'empty object', value: '{}', want: { index: 0, segments: [] } },
      { name: 'segment without token', value: '{"Index":0,"PathSegments":[{}]}', want: { index: 0, segments: [{ token: '' }] } },
    ];
    for (const r of rows) assert.deepEqual(decodeRegistryPath(r.value), r.want, r.name);
    assert.equal(decodeRegistryPath(undefined), undefined, 'no metadata');
    const path = { index: 2, segments: [{ token: tok('nse', 'nsmgr') }, { token: tok('nsmgr', 'registry') }, { token: tok('registry', 'nsmgr') }] };
    assert.deepEqual(decodeRegistryPath(encodeRegistryPath(path)), path, 'round trip');
  });

  it('refuses malformed or oversized values with an error naming the path metadata', () => {
    const many = JSON.stringify({ Index: 0, PathSegments: Array.from({ length: 33 }, () => ({ token: 't' })) });
    const rows: { name: string; value: string; limits?: { maxBytes?: number; maxSegments?: number } }[] = [
      { name: 'not JSON', value: '{"Index":' },
      { name: 'a list', value: '[]' },
      { name: 'negative index', value: '{"Index":-1,"PathSegments":[{"token":"a"}]}' },
      { name: 'fractional index', value: '{"Index":0.5,"PathSegments":[{"token":"a"}]}' },
      { name: 'index as a string', value: '{"Index":"0","PathSegments":[]}' },
      { name: 'index beyond uint32', value: '{"Index":4294967296,"PathSegments":[]}' },
      { name: 'index outside the path', value: '{"Index":2,"PathSegments":[{"token":"a"},{"token":"b"}]}' },
      { name: 'index with no segments', value: '{"Index":1,"PathSegments":[]}' },
      { name: 'segments not a list', value: '{"Index":0,"PathSegments":{"token":"a"}}' },
      { name: 'null segment', value: '{"Index":0,"PathSegments":[null]}' },
      { name: 'token a number', value: '{"Index":0,"PathSegments":[{"token":5}]}' },
      { name: 'token too long', value: JSON.stringify({ Index: 0, PathSegments: [{ token: 'x'.repeat(16 * 1024 + 1) }] }), limits: { maxBytes: 64 * 1024 } },
      { name: 'more than 32 segments', value: many },
      { name: 'more segments than the caller allows', value: '{"Index":0,"PathSegments":[{"token":"a"},{"token":"b"}]}', limits: { maxSegments: 1 } },
      { name: 'larger than maxBytes', value: '{"Index":0,"PathSegments":[{"token":"abcdefghijkl"}]}', limits: { maxBytes: 20 } },
    ];
    for (const r of rows) {
      assert.throws(() => decodeRegistryPath(r.value, r.limits), (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === 'path (metadata)', r.name);
    }
    assert.throws(() => decodeRegistryPath('{}', { maxBytes: 2 * 1024 * 1024 }), { name: 'InvalidArgumentError', field: 'maxBytes' });
    assert.throws(() => decodeRegistryPath('{}', { maxSegments: 0 }), { name: 'InvalidArgumentError', field: 'maxSegments' });
  });
});

describe('registry path update (upstream updatepath)', () => {
  it('follows upstream’s rule at each registry server', () => {
    const rows: { name: string; path: RegistryPath; want: RegistryPath; callerIndex: number }[] = [
      { name: 'first registration: [caller, own] at index 1', path: { index: 0, segments: [] }, want: { index: 1, segments: [{ token: 'peer' }, { token: 'own' }] }, callerIndex: 0 },
      { name: 'next hop: caller’s segment takes its per-RPC token, own appended', path: { index: 1, segments: [{ token: 'a' }, { token: 'b-own' }] }, want: { index: 2, segments: [{ token: 'a' }, { token: 'peer' }, { token: 'own' }] }, callerIndex: 1 },
      { name: 'refresh: both tokens replaced, nothing appended', path: { index: 1, segments: [{ token: 'a' }, { token: 'b' }, { token: 'old' }] }, want: { index: 2, segments: [{ token: 'a' }, { token: 'peer' }, { token: 'own' }] }, callerIndex: 1 },
      { name: 'caller sent no token: its segment becomes empty (upstream)', path: { index: 0, segments: [{ token: 'a' }] }, want: { index: 1, segments: [{ token: '' }, { token: 'own' }] }, callerIndex: 0 },
    ];
    for (const r of rows) {
      const peer = r.name.startsWith('caller sent no token') ? '' : 'peer';
      const got = updateRegistryPath(r.path, peer, 'own');
      assert.deepEqual(got, { path: r.want, callerIndex: r.callerIndex }, r.name);
    }
    const before: RegistryPath = { index: 0, segments: [{ token: 'a' }] };
    updateRegistryPath(before, 'peer', 'own');
    assert.deepEqual(before, { index: 0, segments: [{ token: 'a' }] }, 'the input is not changed');
    assert.throws(() => updateRegistryPath({ index: 3, segments: [{ token: 'a' }] }, 'p', 'o'), { name: 'InvalidArgumentError', field: 'path (metadata)' });
    const full: RegistryPath = { index: 31, segments: Array.from({ length: 32 }, () => ({ token: 't' })) };
    assert.throws(() => updateRegistryPath(full, 'p', 'o'), { name: 'InvalidArgumentError' }, 'a 33rd segment');
  });

  it('path_ids: set at the index, appended past the end (upstream updatePathIDs)', () => {
    assert.deepEqual(updatePathIds([], 0, 'a'), ['a']);
    assert.deepEqual(updatePathIds(['a', 'b'], 1, 'c'), ['a', 'c']);
    assert.deepEqual(updatePathIds(['a'], 5, 'c'), ['a', 'c']);
  });

  it('an NSE registered through nsmgr: path, path_ids and the policies agree end to end', () => {
    // nsmgr receives the NSE's Register: empty path, the NSE's per-RPC token for nsmgr.
    const atNsmgr = updateRegistryPath({ index: 0, segments: [] }, tok('nse', 'nsmgr'), tok('nsmgr', 'nse'));
    const idsAtNsmgr = registryPathIds([], atNsmgr.path, tok('nse', 'nsmgr'), tok('nsmgr', 'nse'));
    assert.deepEqual(idsAtNsmgr, [ID.nse, ID.nsmgr]);
    assert.equal(authorizeRegistryServer({ ...atNsmgr.path, now: Date.now(), peer: svid.nse.leaf, resourceName: 'nse-1' }).refusal, undefined);
    // nsmgr forwards to the registry with the path in metadata (index 1) and its per-RPC token for the registry.
    const wire = decodeRegistryPath(encodeRegistryPath(atNsmgr.path));
    assert.ok(wire);
    const atRegistry = updateRegistryPath(wire, tok('nsmgr', 'registry'), tok('registry', 'nsmgr'));
    const ids = registryPathIds(idsAtNsmgr, atRegistry.path, tok('nsmgr', 'registry'), tok('registry', 'nsmgr'));
    assert.deepEqual(ids, [ID.nse, ID.nsmgr, ID.registry]);
    assert.equal(authorizeRegistryServer({ ...atRegistry.path, now: Date.now(), peer: svid.nsmgr.leaf, resourceName: 'nse-1' }).refusal, undefined);
    // The registry answers with the header at nsmgr's index; nsmgr (a registry client of it) checks it.
    const header = decodeRegistryPath(encodeRegistryPath({ ...atRegistry.path, index: atRegistry.callerIndex }));
    assert.ok(header);
    assert.equal(authorizeRegistryClient({ ...header, now: Date.now(), peer: svid.registry.leaf, resourceName: 'nse-1' }).refusal, undefined);
    // A refresh by the NSE is allowed; an unregister by nsmgr alone (first segment nsmgr) is not.
    assert.equal(authorizeRegistryServer({ ...atRegistry.path, now: Date.now(), peer: svid.nsmgr.leaf, resourceName: 'nse-1', existingPathIds: ids }).refusal, undefined);
    const byNsmgr = updateRegistryPath({ index: 0, segments: [] }, tok('nsmgr', 'registry'), tok('registry', 'nsmgr'));
    const refusal = authorizeRegistryServer({ ...byNsmgr.path, now: Date.now(), peer: svid.nsmgr.leaf, resourceName: 'nse-1', existingPathIds: ids }, { forClose: true }).refusal;
    assert.equal(refusal?.policy, 'registry_client_allowed');
    assert.throws(() => registryPathIds([], atRegistry.path, '', 'not-a-token'), { name: 'InvalidArgumentError', field: 'ownToken' });
    assert.deepEqual(registryPathIds([], atNsmgr.path, 'garbage', tok('nsmgr', 'nse')), ['', ID.nsmgr], 'an unreadable caller token leaves an empty id, as upstream');
  });
});
