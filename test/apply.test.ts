/**
 * `nsm apply` / `nsm delete` against the real registry component on a unix socket (no root needed).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { NetworkServiceEndpoint } from '../src/api/gen/registry.js';
import { DEFAULT_REGISTRY_URL, MAX_APPLY_BYTES, register, resolveRegistryUrl, runApply, runDelete, type ApplyIo } from '../src/cli/commands/apply.js';
import { registryConfig, startRegistry, type RunningRegistry } from '../src/components/registry/index.js';
import { registryChain } from '../src/core/chain.js';
import { newContext } from '../src/core/context.js';
import { silentLogger } from '../src/core/log.js';
import { ChannelPool } from '../src/core/transport.js';
import { nsConnectClient, nseConnectClient } from '../src/registry/connect/index.js';
import { INSECURE } from '../src/security/tls.js';

const SEED_NETSVC = `---
apiVersion: networkservicemesh.io/v1
kind: NetworkService
metadata:
  name: dataplane-interrupt
spec:
  payload: ETHERNET
`;

const NSE_YAML = `---
apiVersion: networkservicemesh.io/v1
kind: NetworkServiceEndpoint
metadata:
  name: manual-nse
spec:
  network_service_names: [dataplane-interrupt]
  network_service_labels:
    dataplane-interrupt:
      labels: { app: manual }
  url: tcp://127.0.0.1:5999
`;

function captureIo(): ApplyIo & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => void lines.push(l), err: (l) => void errors.push(l) };
}

describe('nsm apply / delete', () => {
  let dir: string;
  let url: string;
  let registry: RunningRegistry;
  let pool: ChannelPool;
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const services = async () => {
    const out: string[] = [];
    for await (const r of registryChain('t', [nsConnectClient({ pool, url })]).find({ networkService: undefined, watch: false }, newContext())) {
      out.push(`${r.networkService!.name}:${r.networkService!.payload}`);
    }
    return out.sort();
  };
  const endpoints = async () => {
    const out: NetworkServiceEndpoint[] = [];
    for await (const r of registryChain('t', [nseConnectClient({ pool, url })]).find({ networkServiceEndpoint: undefined, watch: false }, newContext())) {
      out.push(r.networkServiceEndpoint!);
    }
    return out;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nsm-apply-'));
    url = `unix://${join(dir, 'registry.sock')}`;
    registry = await startRegistry(registryConfig.parse({ NSM_INSECURE: 'true', NSM_LISTEN_ON: url, NSM_EXPIRE_PERIOD: '1m' }), { log: silentLogger });
    pool = new ChannelPool(INSECURE);
  });

  after(async () => {
    pool.close();
    await registry.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies the seed netsvc.yaml as is, then reports configured', async () => {
    const f = file('netsvc.yaml', SEED_NETSVC);
    const io = captureIo();
    await runApply({ files: [f], registryUrl: url, security: INSECURE, io });
    assert.deepEqual(io.lines, ['networkservice/dataplane-interrupt created']);
    assert.deepEqual(io.errors, []);
    assert.deepEqual(await services(), ['dataplane-interrupt:ETHERNET']);

    const again = captureIo();
    await runApply({ files: [f], registryUrl: url, security: INSECURE, io: again });
    assert.deepEqual(again.lines, ['networkservice/dataplane-interrupt configured']);
  });

  it('applies an NSE (with a note that it expires) and deletes both', async () => {
    const f = file('both.yaml', `${SEED_NETSVC}${NSE_YAML}`);
    const io = captureIo();
    await runApply({ files: [f], registryUrl: url, security: INSECURE, io });
    assert.deepEqual(io.lines, ['networkservice/dataplane-interrupt configured', 'networkserviceendpoint/manual-nse created']);
    assert.match(io.errors.join('\n'), /expire/);
    const [nse] = await endpoints();
    assert.equal(nse.name, 'manual-nse');
    assert.equal(nse.url, 'tcp://127.0.0.1:5999');
    assert.ok(nse.expirationTime && nse.expirationTime.getTime() > Date.now());

    const del = captureIo();
    await runDelete({ files: [f], registryUrl: url, security: INSECURE, io: del });
    assert.deepEqual(del.lines, ['networkservice "dataplane-interrupt" deleted', 'networkserviceendpoint "manual-nse" deleted']);
    assert.deepEqual(await services(), []);
    assert.deepEqual(await endpoints(), []);
  });

  it('delete of something not registered is NotFoundError unless --ignore-not-found', async () => {
    const f = file('netsvc2.yaml', SEED_NETSVC);
    await assert.rejects(runDelete({ files: [f], registryUrl: url, security: INSECURE, io: captureIo() }), { name: 'NotFoundError' });
    const io = captureIo();
    await runDelete({ files: [f], registryUrl: url, security: INSECURE, io, ignoreNotFound: true });
    assert.match(io.lines[0], /not found \(ignored\)/);
  });

  it('a bad document registers nothing and names file, document and field', async () => {
    const f = file('bad.yaml', `${SEED_NETSVC}${NSE_YAML.replace('url:', 'uri:')}`);
    await assert.rejects(runApply({ files: [f], registryUrl: url, security: INSECURE, io: captureIo() }), (err: Error & { field?: string }) => {
      assert.equal(err.name, 'InvalidArgumentError');
      assert.equal(err.field, `${f} document 2: spec.uri`);
      return true;
    });
    assert.deepEqual(await services(), []);
    await assert.rejects(runApply({ files: [join(dir, 'missing.yaml')], registryUrl: url, security: INSECURE, io: captureIo() }), { name: 'InvalidArgumentError' });
  });

  it('an unreachable registry is UnavailableError', async () => {
    const f = file('netsvc3.yaml', SEED_NETSVC);
    await assert.rejects(runApply({ files: [f], registryUrl: `unix://${join(dir, 'nobody.sock')}`, security: INSECURE, timeoutMs: 300, io: captureIo() }), { name: 'UnavailableError' });
  });

  it('resolves the registry URL: flag > NSM_REGISTRY_URL > run dir > default', () => {
    assert.equal(resolveRegistryUrl('tcp://1.2.3.4:5002', { NSM_REGISTRY_URL: 'unix:///x.sock' }), 'tcp://1.2.3.4:5002');
    assert.equal(resolveRegistryUrl(undefined, { NSM_REGISTRY_URL: 'unix:///x.sock' }), 'unix:///x.sock');
    assert.equal(resolveRegistryUrl(undefined, { NSM_RUN_DIR: '/tmp/mesh' }), 'unix:///tmp/mesh/registry.sock');
    assert.equal(resolveRegistryUrl(undefined, {}), DEFAULT_REGISTRY_URL);
    assert.equal(DEFAULT_REGISTRY_URL, 'unix:///var/lib/networkservicemesh/registry.sock');
    assert.throws(() => resolveRegistryUrl('http://x', {}), { name: 'InvalidArgumentError' });
  });

  it('the commander commands apply and delete through the program', async () => {
    const io = captureIo();
    const program = new Command('nsm').exitOverride();
    register(program, io, { NSM_REGISTRY_URL: url, NSM_INSECURE: 'true' });
    const f = file('netsvc4.yaml', SEED_NETSVC);
    await program.parseAsync(['apply', '-f', f], { from: 'user' });
    await program.parseAsync(['delete', '-f', f, '--timeout', '5s'], { from: 'user' });
    assert.equal(process.exitCode ?? 0, 0);
    assert.deepEqual(io.lines, ['networkservice/dataplane-interrupt created', 'networkservice "dataplane-interrupt" deleted']);
  });

  it('without an identity (no mesh in the run dir, no SPIFFE_ENDPOINT_SOCKET, not NSM_INSECURE) the command refuses, naming what to set', async () => {
    const stderr: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string) => (stderr.push(String(chunk)), true)) as typeof process.stderr.write;
    const program = new Command('nsm').exitOverride();
    register(program, captureIo(), { NSM_REGISTRY_URL: url });
    try {
      await program.parseAsync(['apply', '-f', file('netsvc5.yaml', SEED_NETSVC), '--run-dir', join(dir, 'no-mesh')], { from: 'user' });
    } finally {
      process.stderr.write = write;
    }
    assert.equal(process.exitCode, 1);
    process.exitCode = 0;
    assert.match(stderr.join(''), /no identity to call with: no mesh is up in .*no-mesh.*SPIFFE_ENDPOINT_SOCKET is not set and NSM_INSECURE is not true/);
    const bad = new Command('nsm').exitOverride();
    register(bad, captureIo(), { NSM_REGISTRY_URL: url, NSM_INSECURE: 'maybe' });
    process.stderr.write = ((chunk: string) => (stderr.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      await bad.parseAsync(['apply', '-f', file('netsvc6.yaml', SEED_NETSVC)], { from: 'user' });
    } finally {
      process.stderr.write = write;
    }
    process.exitCode = 0;
    assert.match(stderr.join(''), /NSM_INSECURE: expected true or false \(got "maybe"\)/);
  });

  it('refuses a file or stream larger than the limit before reading it whole (e.g. /dev/zero), registering nothing', async () => {
    const before = await services();
    const rss0 = process.memoryUsage().rss;
    await assert.rejects(runApply({ files: ['/dev/zero'], registryUrl: url, security: INSECURE, io: captureIo() }), (err: Error) => {
      assert.equal(err.name, 'InvalidArgumentError');
      assert.match(err.message, /^-f: cannot read: larger than the limit of 1048576 bytes \(got "\/dev\/zero"\)$/);
      return true;
    });
    assert.ok(process.memoryUsage().rss - rss0 < 64 * 1024 * 1024, 'read at most about the limit');
    const big = file('big.yaml', `${SEED_NETSVC}# ${'x'.repeat(MAX_APPLY_BYTES)}\n`);
    await assert.rejects(runApply({ files: [big], registryUrl: url, security: INSECURE, io: captureIo() }), /-f: cannot read: \d+ bytes is larger than the limit of 1048576 bytes/);
    assert.deepEqual(await services(), before);
  });

  it('an error names a huge bad value by a short excerpt, not whole', async () => {
    const huge = 'Y'.repeat(200_000);
    const f = file('hugevalue.yaml', NSE_YAML.replace('[dataplane-interrupt]', huge));
    await assert.rejects(runApply({ files: [f], registryUrl: url, security: INSECURE, io: captureIo() }), (err: Error) => {
      assert.ok(err.message.length < 600, `message of ${err.message.length} characters`);
      assert.match(err.message, /… \(200002 characters\)/);
      return true;
    });
  });
});
