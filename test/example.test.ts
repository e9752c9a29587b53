/**
 * `nsm example dataplane-interrupt` end to end (real processes, real netns): it passes and cleans up;
 * with --keep, `nsm status -o json` shows the connection with its 4-segment path; Ctrl-C and a failing
 * step leave nothing behind.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { MAIN, ROOT, netnsDelete, requireRoot, sh, waitFor } from './harness.js';

function example(t: TestContext, runDir: string, extra: string[] = []) {
  const child = spawn(process.execPath, [MAIN, 'example', 'dataplane-interrupt', '--run-dir', runDir, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return { child, exit, out: () => out };
}

async function assertNothingLeft(runDir: string) {
  const ns = (await sh('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]);
  assert.ok(!ns.includes('nsc-kernel') && !ns.includes('nse-kernel'), `pods left: ${ns.join(' ')}`);
  const state = join(runDir, 'mesh.json');
  if (existsSync(state)) {
    const s = JSON.parse(readFileSync(state, 'utf8')) as { supervisor?: { pid: number }; components?: Record<string, { pid: number }> };
    for (const p of [s.supervisor, ...Object.values(s.components ?? {})]) {
      if (p?.pid) assert.equal(existsSync(`/proc/${p.pid}`) && readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes(MAIN), false, `process ${p.pid} left`);
    }
  }
  const socks = existsSync(runDir) ? readdirSync(runDir).filter((f) => f.endsWith('.sock')) : [];
  assert.deepEqual(socks, [], 'sockets left');
  assert.equal(existsSync(join(runDir, 'ca')), false, 'the mesh CA is removed with the mesh');
}

const cleanupPods = async (runDir: string) => {
  for (const pod of ['nsc-kernel', 'nse-kernel']) await sh(process.execPath, [MAIN, 'stop-pod', pod, '--run-dir', runDir]).catch(() => undefined);
  await sh(process.execPath, [MAIN, 'down', '--run-dir', runDir]).catch(() => undefined);
  for (const pod of ['nsc-kernel', 'nse-kernel']) await netnsDelete(pod);
};

/** A run dir removed only after the example's pods and mesh are stopped (one hook, in that order). */
function exampleDir(t: TestContext): string {
  const runDir = mkdtempSync(join(tmpdir(), 'nsmt-ex-'));
  t.after(async () => {
    await cleanupPods(runDir);
    rmSync(runDir, { recursive: true, force: true });
  });
  return runDir;
}

describe('nsm example dataplane-interrupt (real processes, real netns)', { concurrency: false }, () => {
  it('runs the seed step for step, exits 0 and leaves nothing behind', async (t) => {
    if (!requireRoot(t)) return;
    const runDir = exampleDir(t);
    const ex = example(t, runDir);
    const code = await ex.exit;
    assert.equal(code, 0, ex.out());
    assert.match(ex.out(), /every step passed/);
    assert.match(ex.out(), /up \(supervisor pid \d+, mTLS, SVIDs from the mesh's Workload API\)/, 'secure by default');
    assert.match(ex.out(), /pinger said "(ping timeout|missing \d+ pings)"/);
    assert.match(ex.out(), /healed +\+\d+/);
    await assertNothingLeft(runDir);
  });

  it('with --keep, nsm status -o json lists the connection with its 4-segment path', async (t) => {
    if (!requireRoot(t)) return;
    const runDir = exampleDir(t);
    const ex = example(t, runDir, ['--keep']);
    assert.equal(await ex.exit, 0, ex.out());
    const status = JSON.parse(await sh(process.execPath, [MAIN, 'status', '-o', 'json', '--run-dir', runDir])) as {
      security: string;
      components: Array<{ name: string; spiffeId: string | null }>;
      connections: Array<{ service: string; path: string[] | string; segments: Array<{ sub: string | null; aud: string[] }> }>;
    };
    const conn = status.connections.find((c) => c.service === "dataplane-interrupt");
    assert.ok(conn, JSON.stringify(status.connections));
    const path = Array.isArray(conn.path) ? conn.path : conn.path.split(' -> ');
    assert.equal(path.length, 4, `path ${path.join(' -> ')}`);
    // secure by default: each hop's token names who made it (sub) and, chained, whom it was for (aud)
    assert.equal(status.security, 'mtls');
    const node = hostname();
    assert.deepEqual(
      status.components.map((c) => c.spiffeId),
      ['registry', 'nsmgr', 'forwarder'].map((c) => `spiffe://nsm.local/node/${node}/${c}`),
    );
    const subs = ['spiffe://nsm.local/ns/nsc-kernel/nsc', `spiffe://nsm.local/node/${node}/nsmgr`, `spiffe://nsm.local/node/${node}/forwarder`, 'spiffe://nsm.local/ns/nse-kernel/nse'];
    assert.deepEqual(conn.segments.map((g) => g.sub), subs, JSON.stringify(conn.segments));
    // aud: each hop mints for its TLS peer once the authorize elements (issue 13, W2) are in
    if (existsSync(join(ROOT, 'dist/src/networkservice/authorize'))) {
      for (let i = 0; i < 3; i++) assert.deepEqual(conn.segments[i].aud, [subs[i + 1]], `segment ${i} aud`);
    }
    await cleanupPods(runDir);
    await assertNothingLeft(runDir);
  });

  it('Ctrl-C in the middle leaves no netns, link, socket or process behind', async (t) => {
    if (!requireRoot(t)) return;
    const runDir = exampleDir(t);
    const ex = example(t, runDir);
    await waitFor('the pinger step', () => ex.out().includes('[ 8]'), 60_000);
    ex.child.kill('SIGINT');
    assert.equal(await ex.exit, 130, ex.out());
    assert.match(ex.out(), /Interrupted/);
    await assertNothingLeft(runDir);
  });

  it('a failing step exits non-zero and cleans up what it started', async (t) => {
    if (!requireRoot(t)) return;
    const runDir = exampleDir(t);
    await sh('ip', ['netns', 'add', 'nse-kernel']);
    t.after(() => netnsDelete('nse-kernel'));
    const ex = example(t, runDir);
    assert.equal(await ex.exit, 1, ex.out());
    assert.match(ex.out(), /pod nse-kernel already exists/);
    const ns = (await sh('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0]);
    assert.ok(ns.includes('nse-kernel'), 'a netns the example did not create is left alone');
    await netnsDelete('nse-kernel');
    await assertNothingLeft(runDir);
  });
});
