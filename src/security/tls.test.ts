/**
 * mTLS on real gRPC (serve / openChannel) over real unix sockets and tcp on 127.0.0.1, with SVIDs from the
 * embedded CA (security/ca.ts): both sides learn the other's SPIFFE ID; every bad peer is refused at the
 * handshake and logged once with the peer and the reason; plaintext is never a fallback; a rotation of
 * both sides' SVIDs keeps live streams and is used by the next connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { createChannel, Status, type CallContext as NiceCallContext, type Channel } from 'nice-grpc';
import { ConnectionEventType, MonitorConnectionDefinition, type ConnectionEvent } from '../api/gen/connection.js';
import { HealthCheckResponse_ServingStatus as Serving, HealthDefinition } from '../api/gen/health.js';
import { NetworkServiceDefinition } from '../api/gen/networkservice.js';
import { networkServiceService } from '../core/edge.js';
import { peerIdentityOf } from '../core/grpc-server.js';
import { netnsIdentity, processNetns } from '../core/peer.js';
import { createLogger, silentLogger, type Logger } from '../core/log.js';
import { createClient, openChannel, parseUrl, serve, serverIdentityOf, type GrpcServer } from '../core/transport.js';
import { buildCertificate, createCa, type EmbeddedCa } from './ca.js';
import type { X509Material, X509Source, X509Svid } from './svid.js';
import { checkPeerCertificate, INSECURE, MAX_HANDSHAKE_TIMEOUT_MS, mtls, transportSecurity, type TransportSecurity } from './tls.js';
import { KEY_USAGE, OID, x509SvidFrom } from './x509.js';

const TD = 'td1.test';
const HOUR = 3600_000;

/** An X509Source whose material the test sets (rotation = `set`). */
class MemorySource implements X509Source {
  #material: X509Material;
  readonly #listeners = new Set<(m: X509Material) => void>();
  constructor(material: X509Material) {
    this.#material = material;
  }
  current(): X509Material {
    return this.#material;
  }
  ready(): Promise<X509Material> {
    return Promise.resolve(this.#material);
  }
  onUpdate(listener: (m: X509Material) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  set(material: X509Material): void {
    this.#material = material;
    for (const l of this.#listeners) l(material);
  }
  get listeners(): number {
    return this.#listeners.size;
  }
  close(): void {}
}

const ca1 = createCa({ trustDomain: TD });
const ca2 = createCa({ trustDomain: 'td2.test' });
const material = (svid: X509Svid, ca: EmbeddedCa = ca1): X509Material => ({ svid, bundles: ca.bundles });
const issue = (name: string, ca: EmbeddedCa = ca1) => material(ca.issue({ spiffeId: `spiffe://${ca.trustDomain}/${name}` }), ca);

/** A leaf the embedded CA would never issue: self-signed, out of its validity, or naming another trust domain. */
function oddSvid(opts: { id: string; signer?: EmbeddedCa; notBefore?: number; notAfter?: number }): X509Svid {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const cert = buildCertificate({
    signingKey: opts.signer ? createPrivateKey(opts.signer.exportPem().keyPem) : privateKey,
    issuer: opts.signer?.root,
    publicKey,
    subject: [['O', 'odd']],
    uris: [opts.id],
    isCa: false,
    keyUsage: [KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment, KEY_USAGE.keyAgreement],
    extKeyUsage: [OID.serverAuth, OID.clientAuth],
    notBefore: new Date(opts.notBefore ?? Date.now() - 60_000),
    notAfter: new Date(opts.notAfter ?? Date.now() + HOUR),
  });
  return x509SvidFrom([cert], privateKey);
}

/** A logger whose JSON lines the test reads. */
function capturedLog(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('mtls-test', 'info', sink), lines };
}

const refusals = (lines: Array<Record<string, unknown>>) => lines.filter((l) => /handshake .*refused/.test(String(l.msg)));

async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Echoes who called: the caller's SPIFFE ID and certificate serial as our CallContext carries them, and whether its netns was found. */
function echoService() {
  return networkServiceService(
    {
      async request(req, ctx) {
        const id = ctx.peerIdentity;
        const netns = (await ctx.peer?.())?.netns;
        return { ...req.connection!, id: 'echo', labels: { caller: id?.spiffeId ?? '', serial: id?.certificate.serialNumber ?? '', netns: netns ?? '' } };
      },
      async close() {},
    },
    silentLogger,
  );
}

/** One event naming the caller (from nice-grpc's context), then open until the caller goes. */
const monitorService = {
  async *monitorConnections(_sel: unknown, call: NiceCallContext): AsyncIterable<ConnectionEvent> {
    const caller = peerIdentityOf(call)?.spiffeId ?? '';
    yield { type: ConnectionEventType.INITIAL_STATE_TRANSFER, connections: { [caller]: { id: caller } as never } };
    await new Promise((resolve) => call.signal.addEventListener('abort', resolve, { once: true }));
  },
};

interface Served {
  readonly server: GrpcServer;
  readonly unix: string;
  readonly tcp: string;
}

async function serveBoth(t: import('node:test').TestContext, security: TransportSecurity): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-mtls-'));
  const unix = `unix://${join(dir, 's.sock')}`;
  const server = await serve(
    [unix, 'tcp://127.0.0.1:0'],
    [
      { definition: NetworkServiceDefinition, implementation: echoService() },
      { definition: MonitorConnectionDefinition, implementation: monitorService },
    ],
    security,
  );
  t.after(async () => {
    await server.stop({ force: true });
    rmSync(dir, { recursive: true, force: true });
  });
  return { server, unix, tcp: server.addresses[1] };
}

function channel(t: import('node:test').TestContext, url: string, security: TransportSecurity, expectServerId?: string): Channel {
  const ch = openChannel(url, security, { expectServerId });
  t.after(() => ch.close());
  return ch;
}

const echo = (ch: Channel) => createClient(NetworkServiceDefinition, ch).request({ connection: { id: 'x' } as never, mechanismPreferences: [] });
const isUnavailable = (err: { code?: number }) => err.code === Status.UNAVAILABLE;

test('mtls: health, a unary and a streaming service over unix and tcp; each side sees the other SPIFFE ID', async (t) => {
  const serverSource = new MemorySource(issue('nsmgr'));
  const clientSource = new MemorySource(issue('nsc'));
  const s = await serveBoth(t, mtls(serverSource));
  for (const url of [s.unix, s.tcp]) {
    const ch = channel(t, url, mtls(clientSource));
    assert.equal((await createClient(HealthDefinition, ch).check({ service: '' })).status, Serving.SERVING, url);
    const conn = await echo(ch);
    assert.equal(conn.labels.caller, 'spiffe://td1.test/nsc', url);
    assert.equal(conn.labels.serial, clientSource.current().svid.leaf.serialNumber, url);
    // the unix peer tag still reaches the call through TLS: the caller's netns is found (root reads /proc); tcp has none
    if (url.startsWith('unix:') && process.getuid?.() === 0) assert.equal(conn.labels.netns, await processNetns('self'));
    if (url.startsWith('tcp:')) assert.equal(conn.labels.netns, '');
    const server = serverIdentityOf(ch);
    assert.equal(server?.spiffeId, 'spiffe://td1.test/nsmgr', url);
    assert.equal(server?.certificate.serialNumber, serverSource.current().svid.leaf.serialNumber);
    const ac = new AbortController();
    const events = createClient(MonitorConnectionDefinition, ch).monitorConnections({ pathSegments: [], networkServices: [] }, { signal: ac.signal });
    for await (const ev of events) {
      assert.deepEqual(Object.keys(ev.connections), ['spiffe://td1.test/nsc'], url);
      break;
    }
    ac.abort();
  }
});

test('mtls: a caller in another netns is found through the TLS layer (peer tag and fd), with its SPIFFE ID', { skip: process.getuid?.() !== 0 && 'needs root (netns)' }, async (t) => {
  const s = await serveBoth(t, mtls(new MemorySource(issue('nsmgr'))));
  const ns = `nsmt-mtls-${process.pid}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.after(() => execFileSync('ip', ['netns', 'del', ns]));
  const client = ca1.issue({ spiffeId: 'spiffe://td1.test/pod' });
  const mod = (p: string) => JSON.stringify(new URL(p, import.meta.url).pathname);
  const script = `
    import { createClient, openChannel } from ${mod('../core/transport.js')};
    import { mtls } from ${mod('./tls.js')};
    import { parseX509SvidPem } from ${mod('./x509.js')};
    import { NetworkServiceDefinition } from ${mod('../api/gen/networkservice.js')};
    const env = JSON.parse(process.env.MTLS_TEST);
    const m = { svid: parseX509SvidPem(env.cert, env.key), bundles: new Map([[env.td, env.root]]) };
    const ch = openChannel(env.url, mtls({ current: () => m, ready: async () => m, onUpdate: () => () => {}, close() {} }));
    const conn = await createClient(NetworkServiceDefinition, ch).request({ connection: { id: 'x' }, mechanismPreferences: [] });
    ch.close();
    process.stdout.write(JSON.stringify(conn.labels));`;
  const env = { ...process.env, MTLS_TEST: JSON.stringify({ cert: client.certChainPem, key: client.keyPem, td: TD, root: ca1.rootPem, url: s.unix }) };
  const out = await new Promise<string>((resolve, reject) =>
    execFile('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], { env, timeout: 20_000 }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  const labels = JSON.parse(out) as Record<string, string>;
  assert.equal(labels.caller, 'spiffe://td1.test/pod');
  assert.equal(labels.serial, client.leaf.serialNumber);
  assert.equal(labels.netns, await netnsIdentity(`file:///run/netns/${ns}`));
  assert.notEqual(labels.netns, await processNetns('self'));
});

test('mtls: plaintext clients and bad client certificates are refused at the handshake, each logged once with the peer and reason', async (t) => {
  const { log, lines } = capturedLog();
  const s = await serveBoth(t, mtls(new MemorySource(issue('nsmgr')), { log }));
  const good = issue('nsc').svid;
  const cases: Array<{ name: string; svid?: X509Svid; plaintext?: boolean; tls11?: boolean; noAlpn?: boolean; reason: RegExp }> = [
    { name: 'TLS 1.1', svid: good, tls11: true, reason: /ERR_SSL_UNSUPPORTED_PROTOCOL/ },
    { name: 'no ALPN', svid: good, noAlpn: true, reason: /did not negotiate HTTP\/2 by ALPN/ },
    { name: 'plaintext HTTP/2', plaintext: true, reason: /^wrong version number \(ERR_SSL_WRONG_VERSION_NUMBER\)$/ },
    { name: 'no client certificate', reason: /no certificate/ },
    { name: 'SVID of another trust domain (its own CA)', svid: ca2.issue({ spiffeId: 'spiffe://td2.test/nsc' }), reason: /UNABLE_TO_VERIFY_LEAF_SIGNATURE/ },
    { name: 'ID of another trust domain signed by our CA', svid: oddSvid({ id: 'spiffe://td2.test/nsc', signer: ca1 }), reason: /not in trust domain "td1.test"/ },
    { name: 'self-signed', svid: oddSvid({ id: 'spiffe://td1.test/nsc' }), reason: /DEPTH_ZERO_SELF_SIGNED_CERT/ },
    { name: 'expired', svid: oddSvid({ id: 'spiffe://td1.test/nsc', signer: ca1, notBefore: Date.now() - 2 * HOUR, notAfter: Date.now() - HOUR }), reason: /CERT_HAS_EXPIRED/ },
  ];
  for (const url of [s.unix, s.tcp]) {
    assert.equal(await rawAttempt(url, { svid: good }), 'accepted', `control: a good SVID is accepted on ${url}`);
    assert.equal(await rawAttempt(url, { svid: good, tls12: true }), 'accepted', `control: TLS 1.2 is accepted on ${url}`);
    for (const c of cases) {
      const before = refusals(lines).length;
      assert.equal(await rawAttempt(url, c), 'refused', `${c.name} on ${url}`);
      await until(`the refusal log of ${c.name}`, () => refusals(lines).length > before);
      await new Promise((r) => setTimeout(r, 20));
      const logged = refusals(lines).slice(before);
      assert.equal(logged.length, 1, `${c.name}: logged once`);
      assert.match(String(logged[0].reason), c.reason, `${c.name}: ${String(logged[0].reason)}`);
      assert.match(String(logged[0].peer), url.startsWith('unix:') ? /^unix-peer:\d+$/ : /^tcp-peer:\d+@127\.0\.0\.1:\d+$/);
      assert.equal(logged[0].listener, url);
    }
  }
  // the same through gRPC: a plaintext channel and an expired SVID get UNAVAILABLE, never an answer
  const plain = createChannel(s.unix);
  t.after(() => plain.close());
  await assert.rejects(createClient(HealthDefinition, plain).check({ service: '' }), isUnavailable);
  const expired = oddSvid({ id: 'spiffe://td1.test/nsc', signer: ca1, notBefore: Date.now() - 2 * HOUR, notAfter: Date.now() - HOUR });
  await assert.rejects(createClient(HealthDefinition, channel(t, s.unix, mtls(new MemorySource(material(expired))))).check({ service: '' }), isUnavailable);
});

test('mtls: a TLS client never falls back to plaintext, and refuses a server outside its trust domain or not the expected ID', async (t) => {
  const plainServer = await serveBoth(t, INSECURE);
  const tlsServer = await serveBoth(t, mtls(new MemorySource(issue('nsmgr'))));
  const otherTd = await serveBoth(t, mtls(new MemorySource(issue('nsmgr', ca2))));
  const cases = [
    { name: 'plaintext server', url: plainServer.unix, reason: /ERR_SSL_WRONG_VERSION_NUMBER/ },
    { name: 'plaintext server over tcp', url: plainServer.tcp, reason: /ERR_SSL_WRONG_VERSION_NUMBER/ },
    { name: 'server of another trust domain', url: otherTd.unix, reason: /SELF_SIGNED_CERT_IN_CHAIN/ },
    { name: 'server with an unexpected ID', url: tlsServer.unix, expect: 'spiffe://td1.test/registry', reason: /not the expected spiffe:\/\/td1\.test\/registry/ },
  ];
  for (const c of cases) {
    const { log, lines } = capturedLog();
    const ch = channel(t, c.url, mtls(new MemorySource(issue('nsc')), { log }), c.expect);
    await assert.rejects(createClient(HealthDefinition, ch).check({ service: '' }), isUnavailable, c.name);
    await until(`the client's refusal log (${c.name})`, () => refusals(lines).length > 0);
    assert.match(String(refusals(lines)[0].reason), c.reason, `${c.name}: ${String(refusals(lines)[0].reason)}`);
    assert.equal(refusals(lines)[0].target, c.url);
    assert.equal(serverIdentityOf(ch), undefined, c.name);
  }
  // the expected ID, when it is the server's, is accepted
  const ok = channel(t, tlsServer.unix, mtls(new MemorySource(issue('nsc'))), 'spiffe://td1.test/nsmgr');
  assert.equal((await createClient(HealthDefinition, ok).check({ service: '' })).status, Serving.SERVING);
});

test('mtls: a rotation of both SVIDs keeps a live stream and is presented by the next connection', async (t) => {
  const serverSource = new MemorySource(issue('nsmgr'));
  const clientSource = new MemorySource(issue('nsc'));
  const s = await serveBoth(t, mtls(serverSource));
  const before = { server: serverSource.current().svid.leaf.serialNumber, client: clientSource.current().svid.leaf.serialNumber };
  const ch1 = channel(t, s.unix, mtls(clientSource));
  const ac = new AbortController();
  t.after(() => ac.abort());
  const watch = createClient(HealthDefinition, ch1).watch({ service: '' }, { signal: ac.signal })[Symbol.asyncIterator]();
  assert.equal((await watch.next()).value?.status, Serving.SERVING);
  assert.equal((await echo(ch1)).labels.serial, before.client);

  serverSource.set(issue('nsmgr'));
  clientSource.set(issue('nsc'));
  const after = { server: serverSource.current().svid.leaf.serialNumber, client: clientSource.current().svid.leaf.serialNumber };
  assert.notEqual(after.server, before.server);
  assert.notEqual(after.client, before.client);

  // the live connection and its stream are untouched: still the old certificates, and the stream delivers
  s.server.setServing(false);
  assert.equal((await watch.next()).value?.status, Serving.NOT_SERVING);
  assert.equal((await echo(ch1)).labels.serial, before.client);
  assert.equal(serverIdentityOf(ch1)?.certificate.serialNumber, before.server);
  // a new connection presents the new certificates, both ways
  const ch2 = channel(t, s.unix, mtls(clientSource));
  assert.equal((await echo(ch2)).labels.serial, after.client);
  assert.equal(serverIdentityOf(ch2)?.certificate.serialNumber, after.server);
  s.server.setServing(true);
  assert.equal((await watch.next()).value?.status, Serving.SERVING);
});

test('mtls: a new CA in the bundle is trusted by the next handshake; a rotation without our bundle keeps the last good one', async (t) => {
  const { log, lines } = capturedLog();
  const caB = createCa({ trustDomain: TD });
  const both = new Map([[TD, ca1.rootPem + caB.rootPem]]);
  const serverSource = new MemorySource(issue('nsmgr'));
  const s = await serveBoth(t, mtls(serverSource, { log }));
  const fromB = new MemorySource({ svid: caB.issue({ spiffeId: 'spiffe://td1.test/nsc' }), bundles: both });
  await assert.rejects(echo(channel(t, s.unix, mtls(fromB))), isUnavailable);
  serverSource.set({ svid: ca1.issue({ spiffeId: 'spiffe://td1.test/nsmgr' }), bundles: both });
  assert.equal((await echo(channel(t, s.unix, mtls(fromB)))).labels.caller, 'spiffe://td1.test/nsc');
  // an update without our trust domain's bundle is refused (logged) and handshakes go on with the previous context
  serverSource.set({ svid: ca1.issue({ spiffeId: 'spiffe://td1.test/nsmgr' }), bundles: ca2.bundles });
  assert.ok(lines.some((l) => /not usable/.test(String(l.msg))));
  assert.equal((await echo(channel(t, s.unix, mtls(fromB)))).labels.caller, 'spiffe://td1.test/nsc');
});

test('mtls: a client that never finishes its handshake is closed at the handshake timeout; stop releases the source', async (t) => {
  const { log, lines } = capturedLog();
  const source = new MemorySource(issue('nsmgr'));
  const s = await serveBoth(t, mtls(source, { log, handshakeTimeoutMs: 200 }));
  assert.equal(source.listeners, 2, 'one rotation listener per listening address');
  const sock = netConnect(s.unix.slice('unix://'.length));
  const closed = new Promise((resolve) => sock.once('close', resolve));
  const t0 = Date.now();
  await closed;
  assert.ok(Date.now() - t0 < 2000, `closed after ${Date.now() - t0} ms`);
  await until('the timeout refusal log', () => refusals(lines).length === 1);
  assert.match(String(refusals(lines)[0].reason), /TLS handshake timeout/);
  await s.server.stop();
  assert.equal(source.listeners, 0);
});

test('checkPeerCertificate: one URI SAN, a SPIFFE ID of our trust domain, not a CA, the expected ID if one is asked', () => {
  const leaf = (uris: string[], isCa = false) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    return buildCertificate({
      signingKey: privateKey,
      publicKey,
      subject: [['O', 't']],
      uris,
      isCa,
      keyUsage: isCa ? [KEY_USAGE.keyCertSign] : [KEY_USAGE.digitalSignature],
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + HOUR),
    });
  };
  const cases: Array<{ name: string; uris: string[]; isCa?: boolean; expected?: string; want: RegExp | string }> = [
    { name: 'an SVID of our trust domain', uris: ['spiffe://td1.test/nsc'], want: 'spiffe://td1.test/nsc' },
    { name: 'the expected ID', uris: ['spiffe://td1.test/nsc'], expected: 'spiffe://td1.test/nsc', want: 'spiffe://td1.test/nsc' },
    { name: 'not the expected ID', uris: ['spiffe://td1.test/nsc'], expected: 'spiffe://td1.test/nsmgr', want: /not the expected spiffe:\/\/td1\.test\/nsmgr/ },
    { name: 'another trust domain', uris: ['spiffe://td2.test/nsc'], want: /not in trust domain "td1\.test"/ },
    { name: 'no URI SAN', uris: [], want: /exactly one URI SAN; this one has none/ },
    { name: 'two URI SANs', uris: ['spiffe://td1.test/a', 'spiffe://td1.test/b'], want: /exactly one URI SAN; this one has 2/ },
    { name: 'not a SPIFFE ID', uris: ['https://td1.test/nsc'], want: /spiffe/i },
    { name: 'a CA certificate', uris: ['spiffe://td1.test/nsc'], isCa: true, want: /CA certificate/ },
  ];
  for (const c of cases) {
    const r = checkPeerCertificate(leaf(c.uris, c.isCa), TD, c.expected);
    if (typeof c.want === 'string') assert.deepEqual(r, { id: c.want }, c.name);
    else assert.match('problem' in r ? r.problem : `accepted ${r.id}`, c.want, c.name);
  }
});

test('mtls: options and the choice of transport security are checked', () => {
  const source = new MemorySource(issue('x'));
  assert.equal(transportSecurity({ insecure: true }), INSECURE);
  assert.equal(transportSecurity({ insecure: false, source }).kind, 'mtls');
  assert.throws(() => transportSecurity({ insecure: false }), (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === 'NSM_INSECURE');
  for (const bad of [0, 99, MAX_HANDSHAKE_TIMEOUT_MS + 1, 1.5, Number.NaN]) {
    assert.throws(() => mtls(source, { handshakeTimeoutMs: bad }), (err: Error & { field?: string }) => err.name === 'InvalidArgumentError' && err.field === 'handshakeTimeoutMs', String(bad));
  }
  assert.throws(() => openChannel('unix:///tmp/x.sock', mtls(source), { expectServerId: 'nsmgr' }), { name: 'InvalidArgumentError' });
});

/**
 * One connection by a bare TLS client (or plaintext HTTP/2): 'accepted' when the server speaks HTTP/2 to it
 * (its SETTINGS frame arrives), 'refused' when the server closes it first.
 */
function rawAttempt(url: string, opts: { svid?: X509Svid; plaintext?: boolean; tls11?: boolean; tls12?: boolean; noAlpn?: boolean }): Promise<'accepted' | 'refused'> {
  const p = parseUrl(url);
  const raw: Socket = p.kind === 'unix' ? netConnect(p.path) : netConnect(p.port, p.host);
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: 'accepted' | 'refused') => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      stream.destroy();
      raw.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish('accepted'), 3000);
    const preface = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);
    const stream = opts.plaintext
      ? raw
      : tlsConnect({
          socket: raw,
          ca: ca1.rootPem,
          cert: opts.svid?.certChainPem,
          key: opts.svid?.keyPem,
          ALPNProtocols: opts.noAlpn ? undefined : ['h2'],
          checkServerIdentity: () => undefined,
          ...(opts.tls11 ? { minVersion: 'TLSv1.1' as const, maxVersion: 'TLSv1.1' as const, ciphers: 'DEFAULT@SECLEVEL=0' } : {}),
          ...(opts.tls12 ? { maxVersion: 'TLSv1.2' as const } : {}),
        });
    if (opts.plaintext) raw.once('connect', () => raw.write(preface));
    else stream.once('secureConnect', () => stream.write(preface));
    stream.on('data', () => finish('accepted'));
    stream.on('error', () => finish('refused'));
    stream.on('close', () => finish('refused'));
  });
}
