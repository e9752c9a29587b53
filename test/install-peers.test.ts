/**
 * scripts/install-peers.sh decides without building: it reuses a peer only when binary and stamp match
 * the wanted version (and then needs no `go` at all), exits 3 with a printed reason when `go` is missing,
 * exits 1 naming the peer when a build fails, exits 2 on an unknown peer. Each case runs the real script on
 * its own temporary cache; the failing build uses a `go` that fails, so no module is downloaded here
 * (test/spire.test.ts runs the real build through the default cache).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { EXIT_NO_GO, INSTALLER, ensurePeers, parseInstallerOutput } from './peers.js';

const SERVER_PKG = 'github.com/spiffe/spire/cmd/spire-server';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function installer(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) =>
    execFile('sh', [INSTALLER, ...args], { env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

function cacheDir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'nsmt-peers-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A cache holding `spire-server` (any executable stands in for the binary) stamped with `version`. */
function seed(cache: string, version: string): string {
  mkdirSync(join(cache, 'bin'), { recursive: true });
  mkdirSync(join(cache, 'stamps'), { recursive: true });
  const bin = join(cache, 'bin', 'spire-server');
  copyFileSync('/bin/true', bin);
  writeFileSync(join(cache, 'stamps', `spire-server@${version}`), `${SERVER_PKG}@${version}\n`);
  return bin;
}

const envWith = (cache: string, go: string): NodeJS.ProcessEnv => ({ ...process.env, NSM_PEERS_CACHE: cache, NSM_PEERS_GO: go });

describe('scripts/install-peers.sh', () => {
  it('reuses a peer whose binary and stamp match the version, without go', async (t) => {
    const cache = cacheDir(t);
    const bin = seed(cache, 'v1.13.3');
    const r = await installer(['spire-server'], envWith(cache, '/nonexistent/go'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parseInstallerOutput(r.stdout), { 'spire-server': bin });
    assert.match(r.stderr, /spire-server v1\.13\.3: cached/);
    assert.match(r.stderr, /peers ready \(spire-server\) in [0-9.]+ s/);
  });

  it('a stamp of another version is not reused: without go that is a skip, with the reason printed', async (t) => {
    const cache = cacheDir(t);
    seed(cache, 'v1.12.0');
    const r = await installer(['spire-server'], envWith(cache, '/nonexistent/go'));
    assert.equal(r.code, EXIT_NO_GO);
    assert.match(r.stderr, /SKIP: .*not installed, so the Go peers spire-server cannot be built/);
    assert.equal(r.stdout, '');
    const peers = await ensurePeers(['spire-server'], envWith(cache, '/nonexistent/go'));
    assert.equal(peers.ok, false);
    assert.match(peers.ok ? '' : peers.skip, /not installed/);
  });

  it('a failing build exits 1 naming the peer, and ensurePeers rejects (a test fails, never skips)', async (t) => {
    const cache = cacheDir(t);
    const go = join(cache, 'failing-go');
    writeFileSync(go, '#!/bin/sh\n[ "$1" = env ] && { echo go1.26.0; exit 0; }\necho "go $*: network unreachable" >&2\nexit 1\n');
    chmodSync(go, 0o755);
    const r = await installer(['spire-agent'], envWith(cache, go));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /FAILED: spire-agent v1\.13\.3: go get -tool \/ go install github\.com\/spiffe\/spire\/cmd\/spire-agent/);
    assert.match(r.stderr, /FAILED to install: spire-agent/);
    await assert.rejects(ensurePeers(['spire-agent'], envWith(cache, go)), /install-peers\.sh spire-agent FAILED \(exit 1\)[\s\S]*network unreachable/);
  });

  it('a go older than 1.24 (no go get -tool) fails, it does not skip', async (t) => {
    const cache = cacheDir(t);
    const go = join(cache, 'old-go');
    writeFileSync(go, '#!/bin/sh\necho go1.22.5\n');
    chmodSync(go, 0o755);
    const r = await installer([], envWith(cache, go));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /FAILED: spire-server spire-agent: go 1\.22\.5 is too old/);
  });

  it('an unknown peer is a usage error naming it and the known ones', async (t) => {
    const r = await installer(['spire-bogus'], envWith(cacheDir(t), '/nonexistent/go'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown peer 'spire-bogus' \(known: spire-server spire-agent cmd-nsmgr/);
  });

  it('--list names every peer with its module and version', async (t) => {
    const r = await installer(['--list'], envWith(cacheDir(t), '/nonexistent/go'));
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^spire-server github\.com\/spiffe\/spire v1\.13\.3$/m);
    assert.match(r.stdout, /^cmd-nsmgr github\.com\/networkservicemesh\/cmd-nsmgr v1\.18\.0$/m);
  });
});
