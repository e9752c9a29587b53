/**
 * Path tokens and upstream's policies end to end (issue 13, deliver 4 and the token cases of 6): a mesh of
 * real processes over mTLS, each with an SVID from a Workload API of the test's own (the embedded
 * server, security/workload-server.ts, with a test CA: components known by pid, pods by their named netns).
 *
 * - A bare client with a real SVID of its pod and a well-formed token signed by another key: PERMISSION_DENIED
 *   naming the policy and segment, logged once at nsmgr, and no interface in any netns.
 * - Another identity unregistering the seed's NSE (its tokens genuine): PERMISSION_DENIED
 *   (registry_client_allowed) at nsmgr; the NSE stays registered and the connection keeps working.
 * - A Close after the tokens expired (the NSC's NSM_MAX_TOKEN_LIFETIME=2s, the NSC killed so it neither
 *   refreshes nor closes, nsmgr stopped past the expiry so its timeout Closes late): allowed and logged at
 *   every hop, and the interfaces are gone.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { processNetns } from '../src/core/peer.js';
import { createLogger } from '../src/core/log.js';
import { readProcess } from '../src/security/attest.js';
import { createCa } from '../src/security/ca.js';
import type { KnownComponent } from '../src/security/identity-policy.js';
import { namedNetnsPods } from '../src/security/named-netns.js';
import { WorkloadApi } from '../src/security/workload-server.js';
import { defer, links, MAIN, netns, nsm, ping, requireRoot, ROOT, seedNscEnv, seedNseEnv, sh, startMesh, tempDir, waitFor } from './harness.js';

const execFileP = promisify(execFile);
const RAW = join(ROOT, 'dist/test/fixtures/secure-raw-call.js');
const TD = 'authz.e2e';
const PERMISSION_DENIED = 7;
const COMPONENTS = new Set(['registry', 'nsmgr', 'forwarder']);

type Reply = { ok: true } | { ok: false; code: number; details: string };

/** The mesh components of this test: host-netns processes of `nsm <component>` that were given `socketUrl`. */
async function components(socketUrl: string): Promise<KnownComponent[]> {
  const host = await processNetns('self');
  const out: KnownComponent[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const environ = await readFile(`/proc/${entry}/environ`, 'utf8').catch(() => '');
    if (!environ.split('\0').includes(`SPIFFE_ENDPOINT_SOCKET=${socketUrl}`)) continue;
    const p = await readProcess(Number(entry));
    if (!p || p.netns !== host || p.cmdline[1] !== MAIN || !COMPONENTS.has(p.cmdline[2])) continue;
    out.push({ pid: p.pid, startTime: p.startTime, name: p.cmdline[2] });
  }
  return out;
}

async function netnsUrl(name: string): Promise<string> {
  const s = await stat(`/run/netns/${name}`, { bigint: true });
  return `inode://${s.dev}/${s.ino}`;
}

async function raw(ns: string, svidFile: string, args: string[], forge = false): Promise<Reply> {
  const env = { ...process.env, RAW_SVID_FILE: svidFile, RAW_FORGE: forge ? '1' : '0' };
  const { stdout } = await execFileP('ip', ['netns', 'exec', ns, process.execPath, RAW, ...args], { env });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Reply;
}

function denied(r: Reply, ...patterns: RegExp[]): void {
  assert.equal(r.ok, false, JSON.stringify(r));
  if (r.ok) return;
  assert.equal(r.code, PERMISSION_DENIED, JSON.stringify(r));
  for (const p of patterns) assert.match(r.details, p);
}

/** Interface names (not lo) of every named netns of the machine that match `re`. */
async function interfacesAnywhere(re: RegExp): Promise<string[]> {
  const found: string[] = [];
  for (const ns of await readdir('/run/netns').catch(() => [] as string[])) {
    const names = await links(ns).then((ls) => ls.map((l) => l.ifname)).catch(() => [] as string[]);
    for (const n of names) if (re.test(n)) found.push(`${ns}/${n}`);
  }
  const host = await sh('ip', ['-j', 'link']).then((o) => (JSON.parse(o) as Array<{ ifname: string }>).map((l) => l.ifname));
  return [...found, ...host.filter((n) => re.test(n)).map((n) => `host/${n}`)];
}

const refusals = (log: string) => log.split('\n').filter((l) => l.includes('"msg":"permission denied by policy"'));

test('path tokens and policies across real processes over mTLS', async (t) => {
  if (!requireRoot(t)) return;
  const dir = tempDir(t, 'nsmt-authz-');
  const ca = createCa({ trustDomain: TD });
  const agent = `unix://${join(dir, 'agent.sock')}`;
  const api = new WorkloadApi(
    { issuer: ca, bundles: () => ca.bundles, knowledge: async () => ({ trustDomain: TD, node: 'node-1', components: await components(agent), pods: await namedNetnsPods() }), log: createLogger('workload-api', 'silent') },
    { svidTtlMs: 600_000 },
  );
  const server = await api.listen(join(dir, 'agent.sock'));
  defer(t, () => server.stop({ force: true }));
  const secure = { SPIFFE_ENDPOINT_SOCKET: agent, NSM_INSECURE: 'false' };

  const mesh = await startMesh(t, { registryEnv: secure, nsmgrEnv: secure, forwarderEnv: secure });
  await mesh.nsmgr.waitLog(/identity: spiffe:\/\/authz\.e2e\/node\/node-1\/nsmgr/);
  const nseNs = await netns(t, 'nse');
  const nscNs = await netns(t, 'nsc');
  const nse = nsm(t, mesh.dir, 'nse', ['nse'], seedNseEnv(mesh, { ...secure, NSM_REGISTER_SERVICE: 'true' }), nseNs);
  await nse.waitLog(/endpoint registered/, 30_000);
  const nsc = nsm(t, mesh.dir, 'nsc', ['nsc'], seedNscEnv(mesh, { ...secure, NSM_MAX_TOKEN_LIFETIME: '2s' }), nscNs);
  await nsc.waitLog(/connection established/, 30_000);
  await waitFor('ping through nsm-1 over the secure mesh', () => ping(nscNs, '172.16.1.100'), 5000);

  // a hostile workload in a pod of its own, with a genuine SVID of that pod from the mesh's CA
  const rawNs = await netns(t, 'raw');
  const rawId = `spiffe://${TD}/ns/${rawNs}/workload`;
  const svid = ca.issue({ spiffeId: rawId, ttlMs: 600_000 });
  const svidFile = join(dir, 'raw-svid.json');
  await writeFile(svidFile, JSON.stringify({ certChainPem: svid.certChainPem, keyPem: svid.keyPem, bundles: [...ca.bundles] }));

  await t.test('a token signed by another key than the caller certificate: PERMISSION_DENIED at nsmgr, nothing created', async () => {
    const before = refusals(mesh.nsmgr.log()).length;
    const r = await raw(rawNs, svidFile, ['request', mesh.sock.nsmgr, 'forged-1', await netnsUrl(rawNs), 'nsm-forged'], true);
    denied(r, /policy prev_token_signed refused path segment 0 \(raw-client\)/, /not signed by the peer/);
    assert.deepEqual(await interfacesAnywhere(/^nsm-forged/), [], 'no interface in any netns');
    assert.deepEqual((await links(rawNs)).map((l) => l.ifname), ['lo']);
    await waitFor('the refusal in the nsmgr log', () => refusals(mesh.nsmgr.log()).length > before, 3000);
    assert.equal(refusals(mesh.nsmgr.log()).length, before + 1, 'logged once, at the refusing hop');
    assert.equal(refusals(mesh.forwarder.log()).length, 0, 'never reached the forwarder');
  });

  await t.test('another identity unregistering the NSE: PERMISSION_DENIED (registry_client_allowed); the NSE stays', async () => {
    const r = await raw(rawNs, svidFile, ['unregister', mesh.sock.nsmgr, 'nse-kernel-1']);
    denied(r, /policy registry_client_allowed refused path segment 0/, new RegExp(`"${rawId.replace(/[./]/g, '\\$&')}" is not the registrant of "nse-kernel-1"`));
    assert.ok(await ping(nscNs, '172.16.1.100', 3, 1), 'the connection still works');
    assert.doesNotMatch(mesh.registry.log(), /"msg":"unregistered"[^\n]*nse-kernel-1/);
  });

  await t.test('a Close after the tokens expired is allowed, logged, and removes the interfaces', async () => {
    assert.ok((await links(nscNs)).some((l) => l.ifname === 'nsm-1'));
    const nseSide = (await links(nseNs)).filter((l) => l.ifname !== 'lo').map((l) => l.ifname);
    assert.equal(nseSide.length, 1, `the NSE side interface: ${nseSide.join(', ')}`);
    const hops = [mesh.nsmgr, mesh.forwarder, nse];
    const refusedBefore = hops.map((p) => refusals(p.log()).length);
    await nsc.kill('SIGKILL'); // no more refresh, no Close of its own
    process.kill(mesh.nsmgr.pid, 'SIGSTOP'); // nsmgr's timeout fires late, after the NSC's 2 s token expired
    await new Promise((r) => setTimeout(r, 3500));
    process.kill(mesh.nsmgr.pid, 'SIGCONT');
    await waitFor('nsm-1 removed', async () => !(await links(nscNs)).some((l) => l.ifname === 'nsm-1'), 15_000);
    await waitFor('the NSE side removed', async () => (await links(nseNs)).every((l) => l.ifname === 'lo'), 15_000);
    const expiredClose = /Close with an expired token of segment 0: allowed, cleaning up/;
    // each hop logs it as its Close goes by (the NSE's may come just after the forwarder removed the pair)
    for (const p of hops) await p.waitLog(expiredClose, 10_000);
    hops.forEach((p, i) => assert.equal(refusals(p.log()).length, refusedBefore[i], `${p.name}: no refusal of the Close`));
  });
});
