/**
 * A client touches only its own pod (issue 12, point 1), on real processes and real network namespaces:
 * a bare client (test/fixtures/raw-call.ts) started inside one pod's netns names another netns, at the
 * nsmgr and straight at the forwarder, and tries to close or take over another pod's connection.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { applyNetsvc, links, netns, nodeProc, nsm, requireRoot, ROOT, seedNseEnv, startMesh, type Mesh } from './harness.js';

const execFileP = promisify(execFile);
const RAW_CALL = join(ROOT, 'dist/test/fixtures/raw-call.js');
const LYING_NSE = join(ROOT, 'dist/test/fixtures/lying-nse.js');
const PERMISSION_DENIED = 7;

type Reply = { ok: true; connection: { id: string } } | { ok: false; code: number; details: string };

async function call(ns: string, socket: string, op: 'request' | 'close', id: string, netnsUrl: string): Promise<Reply> {
  const { stdout } = await execFileP('ip', ['netns', 'exec', ns, process.execPath, RAW_CALL, socket, op, id, netnsUrl]);
  return JSON.parse(stdout.trim().split('\n').pop()!) as Reply;
}

async function netnsUrl(path: string): Promise<string> {
  const s = await stat(path, { bigint: true });
  return `inode://${s.dev}/${s.ino}`;
}

const names = async (ns: string) => (await links(ns)).map((l) => l.ifname).filter((n) => n !== 'lo');

function denied(r: Reply, ...mentions: string[]): void {
  assert.equal(r.ok, false, `refused, got ${JSON.stringify(r)}`);
  if (r.ok) return;
  assert.equal(r.code, PERMISSION_DENIED, r.details);
  for (const m of mentions) assert.ok(r.details.includes(m), `"${r.details}" names ${m}`);
}

async function twoPods(t: Parameters<typeof startMesh>[0]): Promise<{ mesh: Mesh; a: string; b: string; nseNs: string }> {
  const mesh = await startMesh(t);
  await applyNetsvc(mesh);
  const nseNs = await netns(t, 'nse');
  const nse = nsm(t, mesh.dir, 'nse', ['nse'], seedNseEnv(mesh), nseNs);
  await nse.waitLog(/endpoint registered/);
  return { mesh, a: await netns(t, 'pod-a'), b: await netns(t, 'pod-b'), nseNs };
}

describe('netns binding: a client touches only its own pod (real processes, real netns)', { concurrency: false }, () => {
  it('naming another pod\'s netns or the node\'s is refused with PermissionDenied, at the nsmgr and at the forwarder; nothing is created', async (t) => {
    if (!requireRoot(t)) return;
    const { mesh, a, b, nseNs } = await twoPods(t);
    const bUrl = await netnsUrl(`/run/netns/${b}`);
    const hostUrl = await netnsUrl('/proc/self/ns/net'); // the netns the mesh's components run in
    denied(await call(a, mesh.sock.nsmgr, 'request', 'hostile-1', bUrl), bUrl, 'does not belong to the caller');
    denied(await call(a, mesh.sock.nsmgr, 'request', 'hostile-2', hostUrl), hostUrl);
    denied(await call(a, mesh.sock.nsmgr, 'request', 'hostile-3', `file:///run/netns/${b}`), `file:///run/netns/${b}`);
    denied(await call(a, mesh.sock.forwarder, 'request', 'hostile-4', bUrl), bUrl);
    for (const ns of [a, b, nseNs]) assert.deepEqual(await names(ns), [], `nothing created in ${ns}`);
  });

  it('a pod\'s own connection is served; another pod can neither close it nor take it over', async (t) => {
    if (!requireRoot(t)) return;
    const { mesh, a, b, nseNs } = await twoPods(t);
    const aUrl = await netnsUrl(`/run/netns/${a}`);
    const bUrl = await netnsUrl(`/run/netns/${b}`);
    const own = await call(a, mesh.sock.nsmgr, 'request', 'conn-a', aUrl);
    assert.ok(own.ok, JSON.stringify(own));
    assert.deepEqual(await names(a), ['nsm-x']);
    denied(await call(b, mesh.sock.nsmgr, 'close', 'conn-a', aUrl), 'conn-a', 'belongs to a client in netns', aUrl);
    denied(await call(b, mesh.sock.nsmgr, 'request', 'conn-a', bUrl), 'conn-a');
    assert.deepEqual(await names(a), ['nsm-x'], "a's interface untouched");
    assert.deepEqual(await names(b), [], 'nothing in b');
    const closed = await call(a, mesh.sock.nsmgr, 'close', 'conn-a', aUrl);
    assert.ok(closed.ok, JSON.stringify(closed));
    assert.deepEqual(await names(a), []);
    assert.deepEqual(await names(nseNs), []);
  });

  it('an endpoint that names another pod\'s netns for its end is refused: its connection is closed again, nothing is created', async (t) => {
    if (!requireRoot(t)) return;
    const mesh = await startMesh(t);
    await applyNetsvc(mesh);
    const [nseNs, victim, pod] = [await netns(t, 'nse'), await netns(t, 'victim'), await netns(t, 'pod-c')];
    const victimUrl = await netnsUrl(`/run/netns/${victim}`);
    const liar = nodeProc(t, mesh.dir, 'lying-nse', [LYING_NSE, victimUrl], seedNseEnv(mesh), nseNs);
    await liar.waitLog(/lying endpoint registered/);
    const r = await call(pod, mesh.sock.nsmgr, 'request', 'to-liar', await netnsUrl(`/run/netns/${pod}`));
    denied(r, `named netns ${victimUrl} for its end`, 'an endpoint may only name its own network namespace');
    for (const ns of [pod, victim, nseNs]) assert.deepEqual(await names(ns), [], `nothing created in ${ns}`);
  });
});
