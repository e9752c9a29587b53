/**
 * SPIFFE interop with go-spiffe, the Workload API library upstream NSM uses, through a small Go peer of
 * ours (test/fixtures/go-spiffe-peer) built from the Go module proxy into a cache outside the checkout:
 *  - go-spiffe's X509Source reads SVIDs issued by the nsm-ts CA from a server on our workload.proto
 *    (wire names, header, DER chain, PKCS#8 key, bundles) and verifies them with x509svid.Verify;
 *  - our workloadApiSource reads a grpc-go server's Go-made SVID (leaf + intermediate, federated bundle);
 *  - go-spiffe's X509Source, run in a pod netns, gets its attested ID from the mesh's own Workload API
 *    (security/workload-server.ts) and the rotation on the open stream.
 * Skipped with the reason printed when Go is not installed or the module proxy cannot be reached.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { createLogger } from '../src/core/log.js';
import { createCa } from '../src/security/ca.js';
import { namedNetnsPods } from '../src/security/named-netns.js';
import { workloadApiSource } from '../src/security/workload-client.js';
import { WorkloadApi } from '../src/security/workload-server.js';
import { parseCertificates, verifySvidChain } from '../src/security/x509.js';
import { TestWorkloadApi, svidResponse } from '../src/testing/workload-api.js';
import { buildGoFixture } from './peers.js';


async function peer(t: TestContext): Promise<string | undefined> {
  const built = await buildGoFixture('go-spiffe-peer');
  if (!built.ok) {
    process.stdout.write(`# skipping SPIFFE interop: ${built.skip}\n`);
    t.skip(built.skip);
    return undefined;
  }
  return built.bin['go-spiffe-peer'];
}

function start(t: TestContext, bin: string, args: string[]): { child: ChildProcess; lines: AsyncIterator<string>; stderr: () => string } {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
  });
  return { child, lines: createInterface({ input: child.stdout! })[Symbol.asyncIterator](), stderr: () => err };
}

async function nextLine(p: { lines: AsyncIterator<string>; stderr: () => string }, what: string): Promise<string> {
  const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no ${what} from the Go peer; stderr: ${p.stderr()}`)), 30_000).unref());
  const r = await Promise.race([p.lines.next(), timer]);
  if (r.done) throw new Error(`the Go peer ended before ${what}; stderr: ${p.stderr()}`);
  return r.value;
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-spiffe-interop-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('go-spiffe X509Source reads and verifies SVIDs of the nsm-ts CA served on our workload.proto, rotation included', async (t) => {
  const bin = await peer(t);
  if (!bin) return;
  const ca = createCa({ trustDomain: 'example.org' });
  const fed = createCa({ trustDomain: 'fed.org' });
  const api = new TestWorkloadApi(join(tempDir(t), 'agent.sock'));
  t.after(() => api.stop());
  const first = ca.issue({ spiffeId: 'spiffe://example.org/ns/default/sa/nsc' });
  api.push(svidResponse(first, ca, { 'spiffe://fed.org': fed.root.raw }));
  await api.start();
  const go = start(t, bin, ['client', `unix://${api.path}`]);
  const a = JSON.parse(await nextLine(go, 'the first SVID')) as Record<string, unknown>;
  assert.deepEqual(a, { id: first.spiffeId, verified: first.spiffeId, chain: 1, serial: BigInt(`0x${first.leaf.serialNumber}`).toString(16), bundles: ['example.org', 'fed.org'] });
  assert.deepEqual(api.headers, ['true'], 'go-spiffe sent the workload.spiffe.io header our server checks');
  const rotated = ca.issue({ spiffeId: 'spiffe://example.org/ns/default/sa/nsc' });
  api.push(svidResponse(rotated, ca, { 'spiffe://fed.org': fed.root.raw }));
  const b = JSON.parse(await nextLine(go, 'the rotated SVID')) as Record<string, unknown>;
  assert.equal(b.serial, BigInt(`0x${rotated.leaf.serialNumber}`).toString(16));
  const code = await new Promise((r) => go.child.once('exit', r));
  assert.equal(code, 0, go.stderr());
});

test('our workloadApiSource reads a grpc-go Workload API server with Go-made SVIDs (leaf + intermediate)', async (t) => {
  const bin = await peer(t);
  if (!bin) return;
  const path = join(tempDir(t), 'go-agent.sock');
  const go = start(t, bin, ['server', path]);
  assert.equal(await nextLine(go, '"serving"'), 'serving');
  const source = workloadApiSource({ endpoint: `unix://${path}`, log: createLogger('interop', 'silent'), backoffMs: () => 50 });
  t.after(async () => {
    source.close();
    await source.stopped;
  });
  const m = await source.ready(AbortSignal.timeout(20_000));
  assert.equal(m.svid.spiffeId, 'spiffe://go.example/ns/default/sa/go-peer');
  const chain = parseCertificates(m.svid.certChainPem);
  assert.equal(chain.length, 2, 'leaf and intermediate');
  assert.deepEqual([...m.bundles.keys()], ['go.example', 'fed.example']);
  assert.equal(verifySvidChain(chain, m.bundles), m.svid.spiffeId);
  const rotated = await new Promise<typeof m>((r) => source.onUpdate(r));
  assert.notEqual(rotated.svid.leaf.serialNumber, m.svid.leaf.serialNumber);
  assert.equal(rotated.svid.leaf.serialNumber, '0B');
});

test('go-spiffe X509Source in a pod netns gets its attested ID from the mesh Workload API, and its rotation', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root (netns, other processes in /proc)');
  const bin = await peer(t);
  if (!bin) return;
  const ns = `nsmt-goattest-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.after(() => execFileSync('ip', ['netns', 'del', ns]));
  const ca = createCa({ trustDomain: 'example.org' });
  const knowledge = async () => ({ trustDomain: 'example.org', node: 'node-1', components: [], pods: await namedNetnsPods() });
  const api = new WorkloadApi({ issuer: ca, bundles: () => ca.bundles, knowledge, log: createLogger('interop', 'silent') }, { svidTtlMs: 60_000, rotateFraction: 0.05 });
  const server = await api.listen(join(tempDir(t), 'agent.sock'));
  t.after(() => server.stop({ force: true }));
  const go = start(t, 'ip', ['netns', 'exec', ns, bin, 'client', server.urls[0]]);
  const a = JSON.parse(await nextLine(go, 'the first SVID')) as Record<string, unknown>;
  const id = `spiffe://example.org/ns/${ns}/workload`;
  assert.deepEqual({ id: a.id, verified: a.verified, bundles: a.bundles }, { id, verified: id, bundles: ['example.org'] });
  const b = JSON.parse(await nextLine(go, 'the rotated SVID')) as Record<string, unknown>;
  assert.equal(b.id, id);
  assert.notEqual(b.serial, a.serial);
  assert.equal(await new Promise((r) => go.child.once('exit', r)), 0, go.stderr());
});
