/**
 * The one-host mesh's embedded issuer end to end (real `nsm up`, real processes, real netns; root only):
 * - secure by default: the supervisor serves the Workload API at `<run dir>/agent.sock` with a CA kept in
 *   `<run dir>/ca` (0700/0600); every component gets SPIFFE_ENDPOINT_SOCKET; `nsm status -o json` shows each
 *   component's SPIFFE ID `spiffe://nsm.local/node/<host>/<component>` and SVID expiry from the mTLS handshake
 *   of its health check, and `security: mtls`; a restarted component gets its identity again;
 * - a pod process gets `spiffe://nsm.local/ns/<pod>/…` (from `nsm run`, and from a Workload API client run
 *   by hand with `ip netns exec`), a host process the mesh did not start gets no SVID;
 * - CLI commands in the host netns (status, health, apply) work over mTLS with their own `node/<host>/cli` SVID;
 * - `nsm down` removes agent.sock and the CA;
 * - `nsm up --insecure` says so loudly, gives every component NSM_INSECURE=true, runs no Workload API, and
 *   status says `insecure`.
 *
 * Components: the real ones once they take their identity from SPIFFE_ENDPOINT_SOCKET (src/security/identity.ts
 * exists), else the local-mesh test fakes (src/local/testdata/fake-component.ts), which do the same with the
 * project's Workload API client and mTLS server — the issuer, attestation, env and status under test are real.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findTool } from '../src/local/proc.js';
import type { MeshStatus } from '../src/local/status.js';
import { eventually as eventuallyAt, LocalMeshFixture, type Result } from './local-mesh-fixture.js';

const dist = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(dist, 'src/cli/main.js');
const SHIM = join(dist, 'src/local/testdata/cli-shim.js');
/** Real components take their identity from SPIFFE_ENDPOINT_SOCKET once this module exists (issue 13, W1). */
const REAL = existsSync(join(dist, 'src/security/identity.js'));
const CLI = REAL ? MAIN : SHIM;
const FAKE_ENV: Record<string, string> = REAL ? {} : { NSMT_FAKE: 'all' };
const NETSVC = join(dist, '..', 'deployments/examples/heal/dataplane-interrupt/netsvc.yaml');
const HOST = hostname();

const skip = process.getuid?.() !== 0 ? 'needs root (creates network namespaces and runs the mesh)' : !findTool('ip') || !findTool('nsenter') || !findTool('ss') ? 'needs iproute2 (ip, ss) and util-linux (nsenter)' : false;

function nsm(args: string[], env: Record<string, string> = {}): Result {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 90_000, env: { ...process.env, NSM_RUN_DIR: '', NSM_INSECURE: '', SPIFFE_ENDPOINT_SOCKET: '', ...FAKE_ENV, ...env } });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function must(args: string[], env: Record<string, string> = {}): Result {
  const r = nsm(args, env);
  assert.equal(r.code, 0, `nsm ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');

/** A Workload API client (the project's X509Source) that prints the first SVID's ID, or the last error after `ms`. */
const FETCH = `
const { workloadApiSource } = await import(${JSON.stringify(join(dist, 'src/security/workload-client.js'))});
const { silentLogger } = await import(${JSON.stringify(join(dist, 'src/core/log.js'))});
const source = workloadApiSource({ endpoint: process.argv[1], log: silentLogger });
try {
  const m = await source.ready(AbortSignal.timeout(Number(process.argv[2])));
  console.log(JSON.stringify({ spiffeId: m.svid.spiffeId }));
} catch (err) {
  try { source.current(); } catch (e) { console.log(JSON.stringify({ error: e.message })); }
}
source.close();
process.exit(0);
`;

async function fetchSvid(sock: string, ms: number, netns?: string): Promise<{ spiffeId?: string; error?: string }> {
  const argv = [process.execPath, '--input-type=module', '-e', FETCH, `unix://${sock}`, String(ms)];
  const [cmd, ...rest] = netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv;
  const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.once('exit', r));
  return JSON.parse(out.trim().split('\n').at(-1) || '{}') as { spiffeId?: string; error?: string };
}

/** As local-mesh-fixture's, with this file's longer default wait (real components over mTLS start slower). */
const eventually = <T>(what: string, fn: () => T | undefined | false, timeoutMs = 20_000): Promise<T> => eventuallyAt(what, fn, timeoutMs);

const fixtures: LocalMeshFixture[] = [];
after(() => {
  for (const f of fixtures) f.cleanup();
});

function assertComponentIdentities(s: MeshStatus, startedAt: number): void {
  assert.equal(s.security, 'mtls');
  assert.equal(s.trustDomain, 'nsm.local');
  assert.match(s.caller ?? '', new RegExp(`^spiffe://nsm\\.local/node/${HOST}/cli `));
  for (const c of s.components) {
    assert.equal(c.state, 'up', `${c.name}: ${JSON.stringify(c)}`);
    assert.equal(c.security, 'mtls', c.name);
    assert.equal(c.spiffeId, `spiffe://nsm.local/node/${HOST}/${c.name}`);
    const exp = Date.parse(c.svidExpires ?? '');
    assert.ok(exp > Date.now() && exp <= startedAt + 3600_000 + 5000, `${c.name} SVID expires ${c.svidExpires} (1 h after issue)`);
  }
}

describe(`embedded identity of the local mesh (${REAL ? 'real components' : 'fake components: the real ones do not read SPIFFE_ENDPOINT_SOCKET yet'})`, { skip, concurrency: false }, () => {
  test('secure by default: Workload API, CA, SPIFFE IDs and expiry in status, pods get ns/<pod>/…, the host CLI works, down removes socket and CA', { timeout: 240_000 }, async () => {
    const f = new LocalMeshFixture('ei', (args) => nsm(args));
    fixtures.push(f);
    const t0 = Date.now();
    const up = must(['up', ...f.d]);
    assert.match(up.stdout, /security: mTLS; SPIFFE Workload API unix:\/\/.*agent\.sock; CA .*\(new\), trust domain nsm\.local/);
    assert.doesNotMatch(up.stderr, /INSECURE/);
    assert.ok(statSync(join(f.dir, 'agent.sock')).isSocket());
    assert.equal(statSync(join(f.dir, 'ca')).mode & 0o777, 0o700);
    assert.equal(statSync(join(f.dir, 'ca', 'root.key')).mode & 0o777, 0o600);

    let s = await eventually('every component answers', () => {
      const st = f.status();
      return st.components.every((c) => c.state === 'up') && st;
    });
    assertComponentIdentities(s, t0);
    for (const c of Object.values(f.state()!.components)) {
      const env = environ(c!.pid);
      assert.ok(env.includes(`SPIFFE_ENDPOINT_SOCKET=unix://${join(f.dir, 'agent.sock')}`), `${c!.name} has SPIFFE_ENDPOINT_SOCKET`);
      assert.ok(!env.some((e) => e.startsWith('NSM_INSECURE=')), `${c!.name} has no NSM_INSECURE`);
    }

    // a component killed and restarted by the supervisor is attested by its new pid
    const old = f.state()!.components.nsmgr!;
    process.kill(old.pid, 'SIGKILL');
    s = await eventually('nsmgr restarted with its identity', () => {
      const st = f.status();
      const n = st.components.find((c) => c.name === 'nsmgr')!;
      return n.restarts === 1 && n.pid !== old.pid && n.spiffeId === `spiffe://nsm.local/node/${HOST}/nsmgr` && st;
    });

    // the host-netns CLI: health over mTLS names the server's ID
    const h = must(['health', '--url', `unix://${join(f.dir, 'nsm.io.sock')}`, '--timeout', '5s', ...f.d]);
    assert.match(h.stdout, new RegExp(`SERVING \\(spiffe://nsm\\.local/node/${HOST}/nsmgr\\)`));
    if (REAL) assert.match(must(['apply', '-f', NETSVC, ...f.d]).stdout, /networkservice\/dataplane-interrupt (created|configured)/);

    // a pod started by `nsm run` gets SPIFFE_ENDPOINT_SOCKET and an ID of its pod
    const pod = f.pod('nse');
    must(['run', 'nse', '--pod', pod, ...f.d, '-e', 'NSM_SERVICE_NAMES=nsmt-ei-svc', '-e', 'NSM_CIDR_PREFIX=172.16.9.100/31']);
    const proc = f.state()!.pods[pod]!.processes[0]!;
    assert.ok(environ(proc.pid).includes(`SPIFFE_ENDPOINT_SOCKET=unix://${join(f.dir, 'agent.sock')}`));
    const podId = `spiffe://nsm.local/ns/${pod}/${REAL ? 'nse' : 'workload'}`;
    await eventually(`the nse logs its SVID ${podId}`, () => readFileSync(proc.log, 'utf8').includes(`"spiffeId":"${podId}"`));

    // by hand: a Workload API client in the pod netns gets ns/<pod>/workload; one in the host netns gets nothing
    assert.deepEqual(await fetchSvid(join(f.dir, 'agent.sock'), 10_000, pod), { spiffeId: `spiffe://nsm.local/ns/${pod}/workload` });
    const host = await fetchSvid(join(f.dir, 'agent.sock'), 3000);
    assert.equal(host.spiffeId, undefined);
    assert.match(host.error ?? '', /PERMISSION_DENIED|no identity/);
    assert.match(readFileSync(join(f.dir, 'logs', 'supervisor.log'), 'utf8'), /not started by the mesh, and its netns .* is no pod of the mesh/);

    must(['down', ...f.d]);
    assert.equal(existsSync(join(f.dir, 'agent.sock')), false, 'agent.sock removed');
    assert.equal(existsSync(join(f.dir, 'ca')), false, 'CA removed: the next mesh gets a new root');
    f.cleanup();
  });

  test('nsm up --insecure: loud, NSM_INSECURE=true everywhere, no Workload API or CA, status says insecure', { timeout: 120_000 }, async () => {
    const f = new LocalMeshFixture('ei', (args) => nsm(args));
    fixtures.push(f);
    const up = must(['up', '--insecure', ...f.d]);
    assert.match(up.stderr, /WARNING: the mesh runs INSECURE \(nsm up --insecure\)/);
    assert.equal(existsSync(join(f.dir, 'agent.sock')), false);
    assert.equal(existsSync(join(f.dir, 'ca')), false);
    const s = await eventually('every component answers', () => {
      const st = f.status();
      return st.components.every((c) => c.state === 'up') && st;
    });
    assert.equal(s.security, 'insecure');
    assert.deepEqual(
      s.components.map((c) => [c.name, c.state, c.security, c.spiffeId]),
      [
        ['registry', 'up', 'insecure', null],
        ['nsmgr', 'up', 'insecure', null],
        ['forwarder', 'up', 'insecure', null],
      ],
    );
    assert.match(must(['status', ...f.d]).stdout, /^security: INSECURE/m);
    for (const c of Object.values(f.state()!.components)) assert.ok(environ(c!.pid).includes('NSM_INSECURE=true'), c!.name);
    const again = nsm(['up', ...f.d]);
    assert.equal(again.code, 1, 'asking for a secure mesh while an insecure one runs is an error');
    assert.match(again.stderr, /the running mesh is insecure; to change that: nsm down, then nsm up/);
    must(['down', ...f.d]);
    f.cleanup();
  });
});
