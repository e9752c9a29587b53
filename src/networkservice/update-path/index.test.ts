import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Connection } from '../../api/gen/connection.js';
import { networkServiceChain } from '../../core/chain.js';
import { newContext } from '../../core/context.js';
import { checkRequest } from '../../testing/check-request.js';
import { defaultRequest } from '../../testing/requests.js';
import { updatePath, updatePathClient, updatePathServer } from './index.js';

function ids() {
  let n = 0;
  return () => `new-${++n}`;
}

const seg = (name: string, id: string) => ({ name, id });

describe('updatePath (pure)', () => {
  const cases: Array<{
    name: string;
    conn: Parameters<typeof Connection.fromPartial>[0];
    hop: string;
    want?: { id: string; index: number; segs: Array<[string, string]>; returned: number };
    error?: string;
  }> = [
    { name: 'empty path, empty id', conn: {}, hop: 'nsc', want: { id: 'new-1', index: 0, segs: [['nsc', 'new-1']], returned: 0 } },
    { name: 'empty path keeps caller id', conn: { id: 'c1' }, hop: 'nsc', want: { id: 'c1', index: 0, segs: [['nsc', 'c1']], returned: 0 } },
    {
      name: 'own name at index reuses id',
      conn: { id: 'whatever', path: { index: 1, pathSegments: [seg('nsc', 'a'), seg('nsmgr', 'b')] } },
      hop: 'nsmgr',
      want: { id: 'b', index: 1, segs: [['nsc', 'a'], ['nsmgr', 'b']], returned: 1 },
    },
    {
      name: 'from previous hop appends a segment',
      conn: { id: 'a', path: { index: 0, pathSegments: [seg('nsc', 'a')] } },
      hop: 'nsmgr',
      want: { id: 'new-1', index: 1, segs: [['nsc', 'a'], ['nsmgr', 'new-1']], returned: 0 },
    },
    {
      name: 'from previous hop reuses same-named next segment',
      conn: { id: 'a', path: { index: 0, pathSegments: [seg('nsc', 'a'), seg('nsmgr', 'b'), seg('fwd', 'c')] } },
      hop: 'nsmgr',
      want: { id: 'b', index: 1, segs: [['nsc', 'a'], ['nsmgr', 'b'], ['fwd', 'c']], returned: 0 },
    },
    {
      name: 'differently named next segment is overwritten with a new id',
      conn: { id: 'b', path: { index: 1, pathSegments: [seg('nsc', 'a'), seg('nsmgr', 'b'), seg('fwd-old', 'c'), seg('nse', 'd')] } },
      hop: 'fwd-new',
      want: { id: 'new-1', index: 2, segs: [['nsc', 'a'], ['nsmgr', 'b'], ['fwd-new', 'new-1'], ['nse', 'd']], returned: 1 },
    },
    {
      name: 'id mismatch with current segment',
      conn: { id: 'zzz', path: { index: 0, pathSegments: [seg('nsc', 'a')] } },
      hop: 'nsmgr',
      error: 'InvalidArgumentError',
    },
    {
      name: 'index beyond the path',
      conn: { id: 'a', path: { index: 3, pathSegments: [seg('nsc', 'a')] } },
      hop: 'nsmgr',
      error: 'InvalidArgumentError',
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const conn = Connection.fromPartial(c.conn);
      if (c.error) {
        assert.throws(() => updatePath(conn, c.hop, ids()), { name: c.error });
        return;
      }
      const returned = updatePath(conn, c.hop, ids());
      assert.equal(returned, c.want!.returned);
      assert.equal(conn.id, c.want!.id);
      assert.equal(conn.path!.index, c.want!.index);
      assert.deepEqual(
        conn.path!.pathSegments.map((s) => [s.name, s.id]),
        c.want!.segs,
      );
    });
  }
});

describe('update-path elements', () => {
  function mesh() {
    const seen: Array<[string, string, number]> = [];
    const spy = (hop: string) => checkRequest((req) => void seen.push([hop, req.connection!.id, req.connection!.path!.index]), `spy-${hop}`);
    const chain = networkServiceChain('test', [
      updatePathClient({ name: 'nsc' }),
      updatePathServer({ name: 'nsmgr' }),
      spy('nsmgr'),
      updatePathClient({ name: 'nsmgr' }),
      updatePathServer({ name: 'fwd' }),
      spy('fwd'),
      updatePathServer({ name: 'nse' }),
      spy('nse'),
    ]);
    return { chain, seen };
  }

  it('builds a 4-segment path, returns the caller view and keeps ids across re-requests', async () => {
    const { chain, seen } = mesh();
    const conn = await chain.request(defaultRequest({ id: 'nsc-1' }), newContext());
    assert.equal(conn.id, 'nsc-1');
    assert.equal(conn.path!.index, 0);
    assert.deepEqual(conn.path!.pathSegments.map((s) => s.name), ['nsc', 'nsmgr', 'fwd', 'nse']);
    assert.equal(conn.path!.pathSegments[0].id, 'nsc-1');
    assert.deepEqual(seen.map(([h, , i]) => [h, i]), [['nsmgr', 1], ['fwd', 2], ['nse', 3]]);
    assert.deepEqual(seen.map(([, id]) => id), conn.path!.pathSegments.slice(1).map((s) => s.id));

    const firstIds = conn.path!.pathSegments.map((s) => s.id);
    const again = await chain.request({ ...defaultRequest(), connection: conn }, newContext());
    assert.deepEqual(again.path!.pathSegments.map((s) => s.id), firstIds);
    assert.equal(again.id, 'nsc-1');
  });

  it('Close sees each hop id', async () => {
    const closed: string[] = [];
    const chain = networkServiceChain('test', [
      updatePathClient({ name: 'nsc' }),
      updatePathServer({ name: 'nsmgr' }),
      { name: 'spy', request: (r, c, n) => n.request(r, c), close: async (conn) => void closed.push(conn.id) },
    ]);
    const conn = await chain.request(defaultRequest({ id: 'x' }), newContext());
    await chain.close(conn, newContext());
    assert.deepEqual(closed, [conn.path!.pathSegments[1].id]);
  });

  it('rejects an empty hop name at build time', () => {
    assert.throws(() => updatePathServer({ name: '' }), { name: 'InvalidArgumentError' });
  });
});
