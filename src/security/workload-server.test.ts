import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../core/log.js';
import type { GrpcServer } from '../core/transport.js';
import { readProcess } from './attest.js';
import type { KnownComponent, MeshKnowledge } from './identity-policy.js';
import { namedNetnsPods } from './named-netns.js';
import { createCa, type EmbeddedCa } from './ca.js';
import { WorkloadApi, resolveWorkloadApiOptions, x509BundlesResponse, x509SvidResponse } from './workload-server.js';
import { bundlesFromWire, parseX509SvidDer, verifySvidChain } from './x509.js';

const IS_ROOT = process.getuid?.() === 0;
const ROOT = new URL('../../..', import.meta.url).pathname;
const TD = 'nsm.local';

const dist = (f: string) => JSON.stringify(join(ROOT, 'dist/src', f));

/**
 * The test's Workload API client, run as its own process (so the kernel sees a real caller), printing one
 * JSON line per SVID it gets and one for an error. With `--source` it is the project's own X509Source
 * (security/workload-client.ts, what components use), printing each material it reports; otherwise a bare
 * nice-grpc stream of FetchX509SVID, which shows status codes (the source retries them for ever). Named
 * `main.js` so that `node …/main.js nsc` reads as `nsm nsc` to the policy. With `--wait` it waits for a
 * line on stdin first, so the test can register its pid before it calls.
 */
const CLIENT = `
import { createRequire } from 'node:module';
const require = createRequire(${JSON.stringify(join(ROOT, 'package.json'))});
const { createChannel, createClient, Metadata } = require('nice-grpc');
const { SpiffeWorkloadAPIDefinition } = await import(${dist('api/gen/workload.js')});
const { workloadApiSource } = await import(${dist('security/workload-client.js')});
const { svidToDer, splitPem } = await import(${dist('security/x509.js')});
const { silentLogger } = await import(${dist('core/log.js')});
const [sock, count, ...flags] = process.argv.slice(3);
if (flags.includes('--wait')) await new Promise((r) => process.stdin.once('data', r));
const b64 = (b) => Buffer.from(b).toString('base64');
let n = 0;
if (flags.includes('--source')) {
  const source = workloadApiSource({ endpoint: 'unix://' + sock, log: silentLogger });
  await new Promise((done) => source.onUpdate((m) => {
    const { certs, key } = svidToDer(m.svid);
    const own = m.bundles.get(new URL(m.svid.spiffeId).host);
    console.log(JSON.stringify({ spiffeId: m.svid.spiffeId, cert: b64(certs), key: b64(key), bundle: b64(Buffer.concat(splitPem(own))), trustDomains: [...m.bundles.keys()] }));
    if (++n >= Number(count)) done();
  }));
  source.close();
} else {
  const client = createClient(SpiffeWorkloadAPIDefinition, createChannel('unix://' + sock));
  const metadata = flags.includes('--no-header') ? new Metadata() : new Metadata({ 'workload.spiffe.io': 'true' });
  try {
    for await (const r of client.fetchX509SVID({}, { metadata })) {
      const s = r.svids[0];
      console.log(JSON.stringify({ spiffeId: s.spiffeId, cert: b64(s.x509Svid), key: b64(s.x509SvidKey), bundle: b64(s.bundle) }));
      if (++n >= Number(count)) break;
    }
  } catch (err) {
    console.log(JSON.stringify({ code: err.code, details: err.details }));
  }
}
process.exit(0);
`;

interface Line {
  spiffeId?: string;
  cert?: string;
  key?: string;
  bundle?: string;
  trustDomains?: string[];
  code?: number;
  details?: string;
}

/** Runs the client (in netns `ns` if given) and collects its lines; `beforeGo` runs once its pid is known. */
async function runClient(
  script: string,
  sock: string,
  count: number,
  opts: { ns?: string; flags?: string[]; beforeGo?: (pid: number) => Promise<void>; onLine?: (n: number, child: ChildProcess) => void } = {},
): Promise<{ pid: number; lines: Line[] }> {
  const args = [script, 'nsc', sock, String(count), ...(opts.flags ?? []), ...(opts.beforeGo ? ['--wait'] : [])];
  const child: ChildProcess = opts.ns ? spawn('ip', ['netns', 'exec', opts.ns, process.execPath, ...args]) : spawn(process.execPath, args);
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
    opts.onLine?.(out.split('\n').length - 1, child);
  });
  const exited = new Promise((r) => child.once('exit', r));
  if (opts.beforeGo) {
    await opts.beforeGo(child.pid!);
    child.stdin!.write('go\n');
  }
  await exited;
  clearTimeout(killer);
  return { pid: child.pid!, lines: out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line) };
}

/** Checks an SVID as a relying party would (security/x509.ts): parses as an SVID, chains to the bundle, key matches. */
function checkSvid(line: Line, rootPem: string): X509Certificate {
  const svid = parseX509SvidDer(Buffer.from(line.cert!, 'base64'), Buffer.from(line.key!, 'base64'));
  assert.equal(svid.spiffeId, line.spiffeId);
  const bundles = bundlesFromWire(TD, Buffer.from(line.bundle!, 'base64'), {}, 0);
  assert.equal(new X509Certificate(bundles.get(TD)!).fingerprint256, new X509Certificate(rootPem).fingerprint256);
  assert.equal(verifySvidChain([svid.leaf], bundles), line.spiffeId);
  return svid.leaf;
}

describe('workload api options', () => {
  it('bounds every option and names the field', () => {
    assert.deepEqual(resolveWorkloadApiOptions(), { svidTtlMs: 3600_000, rotateFraction: 0.5, maxStreams: 1024 });
    for (const bad of [{ svidTtlMs: 1000 }, { svidTtlMs: 48 * 3600_000 }, { rotateFraction: 0.99 }, { rotateFraction: 0 }, { maxStreams: 0 }, { maxStreams: Number.NaN }]) {
      assert.throws(() => resolveWorkloadApiOptions(bad), (e: Error) => e.name === 'InvalidArgumentError' && e.message.includes(Object.keys(bad)[0]));
    }
  });
});

describe('workload api responses', () => {
  it('carry the chain and key as DER, the own bundle, and federated bundles keyed by spiffe://<td>', () => {
    const ca = createCa({ trustDomain: TD });
    const other = createCa({ trustDomain: 'other.test' });
    const svid = ca.issue({ spiffeId: `spiffe://${TD}/ns/p/nsc` });
    const bundles = new Map([...ca.bundles, ...other.bundles]);
    const r = x509SvidResponse(svid, bundles);
    assert.equal(r.svids.length, 1);
    const back = parseX509SvidDer(r.svids[0].x509Svid, r.svids[0].x509SvidKey);
    assert.equal(back.leaf.fingerprint256, svid.leaf.fingerprint256);
    assert.deepEqual(Object.keys(r.federatedBundles), ['spiffe://other.test']);
    const wire = bundlesFromWire(TD, r.svids[0].bundle, r.federatedBundles, 4);
    assert.deepEqual([...wire.keys()], [TD, 'other.test']);
    assert.equal(verifySvidChain([back.leaf], wire), svid.spiffeId);
    assert.deepEqual(Object.keys(x509BundlesResponse(bundles).bundles), [`spiffe://${TD}`, 'spiffe://other.test']);
  });
});

describe('workload api on real processes and namespaces', { skip: !IS_ROOT && 'needs root (netns, other processes in /proc)' }, () => {
  let dir: string;
  let ns: string;
  let script: string;
  let issuer: EmbeddedCa;
  let bundles: ReadonlyMap<string, string>;
  let server: GrpcServer;
  let api: WorkloadApi;
  const sock = () => join(dir, 'agent.sock');
  const components: KnownComponent[] = [];
  const warnings: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsmt-wl-'));
    mkdirSync(join(dir, 'bin'));
    script = join(dir, 'bin', 'main.js');
    writeFileSync(join(dir, 'bin', 'package.json'), '{"type":"module"}');
    writeFileSync(script, CLIENT);
    ns = `nsmt-wl-${process.pid}`;
    execFileSync('ip', ['netns', 'add', ns]);
    issuer = createCa({ trustDomain: TD });
    // the pods are the named netns, read at each call: `ip netns exec POD …` by hand is a pod too
    const knowledge = async (): Promise<MeshKnowledge> => ({ trustDomain: TD, node: 'node-1', components, pods: await namedNetnsPods() });
    const log = Object.assign(Object.create(silentLogger) as typeof silentLogger, { warn: (o: { reason: string }) => warnings.push(o.reason) });
    bundles = issuer.bundles;
    api = new WorkloadApi({ issuer, bundles: () => bundles, knowledge, log }, { svidTtlMs: 60_000, rotateFraction: 0.05 });
    server = await api.listen(sock());
  });

  after(async () => {
    await server?.stop({ force: true });
    execFileSync('ip', ['netns', 'del', ns]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('a process in a pod netns gets spiffe://<td>/ns/<pod>/<what it runs>', async () => {
    const { lines } = await runClient(script, sock(), 1, { ns, flags: ['--source'] });
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.equal(lines[0].spiffeId, `spiffe://${TD}/ns/${ns}/nsc`);
    checkSvid(lines[0], issuer.rootPem);
  });

  it('a process in the host netns the supervisor did not start is refused, naming its pid', async () => {
    const { pid, lines } = await runClient(script, sock(), 1);
    assert.equal(lines.length, 1);
    assert.equal(lines[0].code, 7, 'PERMISSION_DENIED');
    assert.match(lines[0].details!, new RegExp(`pid ${pid}: not started by the mesh`));
    assert.ok(warnings.some((w) => w.startsWith(`pid ${pid}:`)), 'the refusal is logged');
  });

  it('a process the supervisor started (pid + start time) gets its component ID', async () => {
    const { lines } = await runClient(script, sock(), 1, {
      flags: ['--source'],
      beforeGo: async (pid) => {
        const facts = await readProcess(pid);
        components.push({ pid, startTime: facts!.startTime, name: 'nsmgr' });
      },
    });
    assert.equal(lines[0]?.spiffeId, `spiffe://${TD}/node/node-1/nsmgr`, JSON.stringify(lines));
    checkSvid(lines[0], issuer.rootPem);
  });

  it('an open stream is attested again at rotation: a component the mesh no longer knows gets PERMISSION_DENIED', async () => {
    let me: KnownComponent | undefined;
    const { pid, lines } = await runClient(script, sock(), 2, {
      beforeGo: async (pid) => {
        me = { pid, startTime: (await readProcess(pid))!.startTime, name: 'forwarder' };
        components.push(me);
      },
      onLine: (n) => {
        if (n >= 1 && components.includes(me!)) components.splice(components.indexOf(me!), 1);
      },
    });
    assert.equal(lines.length, 2, JSON.stringify(lines));
    assert.equal(lines[0].spiffeId, `spiffe://${TD}/node/node-1/forwarder`);
    assert.equal(lines[1].code, 7);
    assert.match(lines[1].details!, new RegExp(`pid ${pid}: not started by the mesh`));
  });

  it('streams beyond maxStreams are RESOURCE_EXHAUSTED', async () => {
    const small = new WorkloadApi({ issuer, bundles: () => issuer.bundles, knowledge: async () => ({ trustDomain: TD, node: 'node-1', components: [], pods: await namedNetnsPods() }), log: silentLogger }, { maxStreams: 1 });
    const path = join(dir, 'small.sock');
    const srv = await small.listen(path);
    try {
      let second: Promise<{ lines: Line[] }> | undefined;
      const first = await runClient(script, path, 2, {
        ns,
        onLine: (n, child) => {
          if (n >= 1 && !second) second = runClient(script, path, 1, { ns }).finally(() => child.kill('SIGKILL'));
        },
      });
      assert.equal(first.lines[0].spiffeId, `spiffe://${TD}/ns/${ns}/nsc`);
      const { lines } = await second!;
      assert.equal(lines[0].code, 8, JSON.stringify(lines));
    } finally {
      await srv.stop({ force: true });
    }
  });

  it('a call without the workload.spiffe.io header is INVALID_ARGUMENT', async () => {
    const { lines } = await runClient(script, sock(), 1, { ns, flags: ['--no-header'] });
    assert.equal(lines[0].code, 3, JSON.stringify(lines));
  });

  it('the open stream gets a new SVID before the old one expires (rotation), and the X509Source takes it', async () => {
    const { lines } = await runClient(script, sock(), 2, { ns, flags: ['--source'] });
    assert.equal(lines.length, 2, JSON.stringify(lines));
    const [a, b] = lines.map((l) => checkSvid(l, issuer.rootPem));
    assert.notEqual(a.serialNumber, b.serialNumber, 'a new certificate');
    assert.equal(lines[1].spiffeId, lines[0].spiffeId);
    assert.ok(Date.now() < Date.parse(a.validTo), 'pushed while the old one is valid');
    // issued at its notBefore (second precision); re-issued at 5% of 60 s after that, not at once
    assert.ok(Date.parse(b.validFrom) - Date.parse(a.validFrom) >= 2_000, `${a.validFrom} → ${b.validFrom}`);
  });

  it('a bundle change (a federated trust domain) is pushed at once, with the same SVID', async () => {
    let pushedAt = 0;
    const other = createCa({ trustDomain: 'other.test' });
    const { lines } = await runClient(script, sock(), 2, {
      ns,
      flags: ['--source'],
      onLine: (n) => {
        if (n >= 1 && bundles.size === 1) {
          bundles = new Map([...issuer.bundles, ...other.bundles]);
          pushedAt = Date.now();
          api.bundleChanged();
        }
      },
    });
    bundles = issuer.bundles;
    assert.equal(lines.length, 2, JSON.stringify(lines));
    const [a, b] = lines.map((l) => checkSvid(l, issuer.rootPem));
    assert.ok(Date.now() - pushedAt < 2_000, 'at once, not at the next rotation');
    assert.equal(a.serialNumber, b.serialNumber);
    assert.deepEqual(lines[0].trustDomains, [TD]);
    assert.deepEqual(lines[1].trustDomains, [TD, 'other.test']);
  });
});
