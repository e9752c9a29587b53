/**
 * Real SPIRE v1.13.3 (test/spire.ts): spire-server and spire-agent as processes, join-token node attestation,
 * unix workload attestation. Identities are fetched with SPIRE's own Workload API client (`spire-agent api
 * fetch x509`) and checked with Node's X509Certificate and `openssl verify`: the URI SAN, the chain to the
 * bundle, that selectors decide who gets an SVID, and that a short TTL rotates it.
 *
 * SPIRE comes from scripts/install-peers.sh: if its install fails the suite FAILS (with the installer's
 * output); only a machine without `go` skips, with the printed reason. Needs root (its own netns).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { IS_ROOT, NOT_ROOT_REASON, ROOT, sh, waitFor } from './harness.js';
import { ensurePeers } from './peers.js';
import { SpireUnavailableError, agentConfig, checkEntry, checkOptions, parseEntryCreate, serverConfig, startSpire, type Spire } from './spire.js';

const TD = 'example.org';
const TEST_ID = `spiffe://${TD}/nsm/test`;
const NOBODY = 65534;
/** Short enough to see a rotation in a test (the agent renews at half-life), long enough not to race a fetch. */
const SVID_TTL_S = 8;

interface Fetched {
  spiffeId: string;
  leaf: X509Certificate;
  svidFile: string;
  keyFile: string;
  bundleFile: string;
}

/** `spire-agent api fetch x509 -write <dir>` as `uid` (default: this process); the SVIDs it wrote. */
function fetchX509(spire: Spire, outDir: string, uid?: number): Promise<Fetched[]> {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  chmodSync(outDir, 0o777);
  const ids = uid === undefined ? {} : { uid, gid: uid };
  return new Promise((resolve, reject) =>
    execFile(spire.bin.agent, ['api', 'fetch', 'x509', '-socketPath', spire.agentSocket, '-write', outDir, '-timeout', '5s'], { encoding: 'utf8', timeout: 20_000, ...ids }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`spire-agent api fetch x509 (uid ${uid ?? process.getuid?.()}): ${(stderr || stdout || err.message).trim()}`));
      const out: Fetched[] = [];
      for (const f of readdirSync(outDir).filter((x) => /^svid\.\d+\.pem$/.test(x)).sort()) {
        const n = /^svid\.(\d+)\.pem$/.exec(f)![1];
        const leaf = new X509Certificate(readFileSync(join(outDir, f)));
        out.push({ spiffeId: leaf.subjectAltName!.replace(/^URI:/, ''), leaf, svidFile: join(outDir, f), keyFile: join(outDir, `svid.${n}.key`), bundleFile: join(outDir, `bundle.${n}.pem`) });
      }
      resolve(out);
    }),
  );
}

/** Listening TCP sockets (`ss -Hltnp`) of `pids`, in the host netns or in `netns`. */
async function tcpListenersOf(pids: number[], netns?: string): Promise<string[]> {
  const out = netns ? await sh('ip', ['netns', 'exec', netns, 'ss', '-Hltnp']) : await sh('ss', ['-Hltnp']);
  return out.split('\n').filter((l) => pids.some((p) => l.includes(`pid=${p},`)));
}

describe('SPIRE configuration (pure)', () => {
  it('rejects bad options naming the field and the value', () => {
    for (const [o, re] of [
      [{ dir: '/tmp/x', trustDomain: 'Example.ORG' }, /trustDomain: "Example\.ORG"/],
      [{ dir: '/tmp/x', trustDomain: TD, svidTtlSeconds: 1 }, /svidTtlSeconds: 1 must be/],
      [{ dir: '/tmp/x', trustDomain: TD, svidTtlSeconds: 90_000 }, /svidTtlSeconds: 90000/],
      [{ dir: 'rel', trustDomain: TD }, /dir: "rel" must be an absolute path/],
    ] as const) {
      assert.throws(() => checkOptions(o), re);
    }
    assert.equal(checkOptions({ dir: '/tmp/x', trustDomain: TD }).svidTtlSeconds, 60);
  });

  it('renders unix sockets in dir, sqlite, join_token and the unix attestor with workload paths', () => {
    const s = serverConfig({ dir: '/d', trustDomain: TD, svidTtlSeconds: 30 });
    assert.match(s, /socket_path = "\/d\/server\/api\.sock"/);
    assert.match(s, /bind_address = "127\.0\.0\.1"/);
    assert.match(s, /database_type = "sqlite3"/);
    assert.match(s, /default_x509_svid_ttl = "30s"/);
    assert.match(s, /NodeAttestor "join_token"/);
    const a = agentConfig({ dir: '/d', trustDomain: TD });
    assert.match(a, /socket_path = "\/d\/agent\/api\.sock"/);
    assert.match(a, /insecure_bootstrap = true/);
    assert.match(a, /WorkloadAttestor "unix" \{\s*plugin_data \{\s*discover_workload_path = true/);
  });

  it('rejects entries outside the trust domain, selectors that are not type:value, unbounded TTLs', () => {
    assert.doesNotThrow(() => checkEntry(TD, TEST_ID, ['unix:uid:0', 'unix:path:/usr/bin/x'], 30));
    for (const [id, sels, ttl, re] of [
      ['spiffe://other.org/x', ['unix:uid:0'], undefined, /spiffeId "spiffe:\/\/other\.org\/x" is not a SPIFFE ID of example\.org/],
      ['not-an-id', ['unix:uid:0'], undefined, /spiffeId "not-an-id"/],
      [TEST_ID, [], undefined, /selectors: at least one/],
      [TEST_ID, ['uid0'], undefined, /selector "uid0" is not type:value/],
      [TEST_ID, ['unix:uid:0'], 0, /x509SvidTtlSeconds: 0 must be/],
    ] as const) {
      assert.throws(() => checkEntry(TD, id, sels, ttl), re);
    }
  });

  it('reads the entry id, and an error status, from entry create -output json', () => {
    assert.equal(parseEntryCreate('{"results":[{"status":{"code":0,"message":"OK"},"entry":{"id":"abc"}}]}'), 'abc');
    assert.throws(() => parseEntryCreate('{"results":[{"status":{"code":6,"message":"similar entry already exists"}}]}'), /similar entry already exists/);
  });
});

describe('the Kubernetes SPIRE app (deployments/apps/spire)', () => {
  it('its server.conf and agent.conf pass the real spire-server / spire-agent validate', async (t) => {
    const peers = await ensurePeers(['spire-server', 'spire-agent']);
    if (!peers.ok) return t.skip(peers.skip);
    const app = join(ROOT, 'deployments/apps/spire');
    assert.match(await sh(peers.bin['spire-server'], ['validate', '-config', join(app, 'server.conf')]), /configuration file is valid/);
    assert.match(await sh(peers.bin['spire-agent'], ['validate', '-config', join(app, 'agent.conf')]), /configuration file is valid/);
  });
});

describe('real SPIRE v1.13.3 on one host: join token, unix workload attestation', () => {
  let spire: Spire | undefined;
  let skip: string | undefined;
  let work: string;

  before(async () => {
    if (!IS_ROOT) {
      skip = NOT_ROOT_REASON;
      return;
    }
    work = mkdtempSync(join(tmpdir(), 'nsmt-spire-test-'));
    chmodSync(work, 0o755);
    try {
      spire = await startSpire({ dir: mkdtempSync(join(tmpdir(), 'nsmt-spire-')), trustDomain: TD, svidTtlSeconds: SVID_TTL_S });
    } catch (err) {
      if (!(err instanceof SpireUnavailableError)) throw err;
      skip = err.message;
      console.log(`# SKIP SPIRE tests: ${skip}`);
    }
  });
  after(async () => {
    await spire?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const ready = (t: TestContext): Spire | undefined => {
    if (!spire) t.skip(skip);
    return spire;
  };

  it('server and agent are healthy; the host netns sees only their unix sockets', async (t) => {
    const s = ready(t);
    if (!s) return;
    await sh(s.bin.server, ['healthcheck', '-socketPath', s.serverSocket]);
    await sh(s.bin.agent, ['healthcheck', '-socketPath', s.agentSocket]);
    assert.equal(s.endpointSocket, `unix://${s.agentSocket}`);
    const pids = [s.pids.server, s.pids.agent];
    assert.deepEqual(await tcpListenersOf(pids), [], 'no TCP listener of SPIRE in the host netns');
    const inside = await tcpListenersOf(pids, s.netns);
    assert.ok(inside.some((l) => l.includes('127.0.0.1:8081') && l.includes(`pid=${s.pids.server},`)), `server on 127.0.0.1:8081 in ${s.netns}: ${inside.join('\n')}`);
    assert.match(s.log('agent'), /Node attestation was successful/);
  });

  it(`an entry for unix:uid:0 gives this process an X.509-SVID for ${TEST_ID} that verifies against the bundle`, async (t) => {
    const s = ready(t);
    if (!s) return;
    const entry = await s.createEntry(TEST_ID, ['unix:uid:0']);
    assert.match(entry.id, /^[0-9a-f-]{36}$/);
    const svids = await fetchX509(s, join(work, 'root'));
    assert.deepEqual(svids.map((x) => x.spiffeId), [TEST_ID]);
    const [svid] = svids;
    assert.equal(svid.leaf.subjectAltName, `URI:${TEST_ID}`);
    assert.equal(svid.leaf.ca, false);
    const key = createPrivateKey(readFileSync(svid.keyFile));
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.ok(svid.leaf.checkPrivateKey(key), 'the key is the leaf\'s');
    const bundle = new X509Certificate(readFileSync(svid.bundleFile));
    assert.equal(bundle.ca, true);
    assert.equal(bundle.subjectAltName, `URI:spiffe://${TD}`);
    assert.match(await sh('openssl', ['verify', '-CAfile', svid.bundleFile, svid.svidFile]), /: OK$/m);
    const ttl = (Date.parse(svid.leaf.validTo) - Date.parse(svid.leaf.validFrom)) / 1000;
    assert.ok(ttl <= SVID_TTL_S + 30 && ttl >= SVID_TTL_S, `TTL ${ttl} s (server default ${SVID_TTL_S} s, notBefore backdated)`);
  });

  it('a workload whose selectors match no entry gets no SVID; an entry for its uid gives it one', async (t) => {
    const s = ready(t);
    if (!s) return;
    await assert.rejects(fetchX509(s, join(work, 'nobody'), NOBODY), /no identity issued|PermissionDenied/);
    const id = `spiffe://${TD}/nsm/nobody`;
    await s.createEntry(id, [`unix:uid:${NOBODY}`]);
    const svids = await waitFor('an SVID for uid 65534', async () => {
      const got = await fetchX509(s, join(work, 'nobody'), NOBODY);
      return got.length > 0 ? got : undefined;
    }, 20_000, 500);
    assert.deepEqual(svids.map((x) => x.spiffeId), [id], 'nobody gets its own identity, not root\'s');
    assert.match(await sh('openssl', ['verify', '-CAfile', svids[0].bundleFile, svids[0].svidFile]), /: OK$/m);
  });

  it(`with a ${SVID_TTL_S} s TTL the agent rotates the SVID (new serial, later validity)`, async (t) => {
    const s = ready(t);
    if (!s) return;
    const first = (await fetchX509(s, join(work, 'rot'))).find((x) => x.spiffeId === TEST_ID);
    assert.ok(first, `an SVID for ${TEST_ID} (created by the earlier test)`);
    const next = await waitFor('a rotated SVID', async () => {
      const got = (await fetchX509(s, join(work, 'rot'))).find((x) => x.spiffeId === TEST_ID);
      return got && got.leaf.serialNumber !== first.leaf.serialNumber ? got : undefined;
    }, 4 * SVID_TTL_S * 1000, 500);
    assert.ok(Date.parse(next.leaf.validTo) > Date.parse(first.leaf.validTo), 'the new SVID expires later');
    assert.equal(next.leaf.subjectAltName, `URI:${TEST_ID}`);
    assert.match(await sh('openssl', ['verify', '-CAfile', next.bundleFile, next.svidFile]), /: OK$/m);
  });
});
