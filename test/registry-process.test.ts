/**
 * `nsm registry` as a real process: a bad NSM_LISTEN_ON exits 2 naming the variable; a good config
 * becomes ready, serves health and the NSE registry on a unix socket, and stops cleanly on SIGTERM
 * (exit 0, socket removed). Skipped, with the reason printed, while the command is not wired into the
 * CLI. `NSM_MAIN_JS` overrides the entry (default dist/src/cli/main.js).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { createChannel, createClient } from 'nice-grpc';
import { HealthCheckResponse_ServingStatus, HealthDefinition } from '../src/api/gen/health.js';
import { NetworkServiceEndpointRegistryDefinition } from '../src/api/gen/registry.js';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const mainJs = process.env.NSM_MAIN_JS ?? join(root, 'dist/src/cli/main.js');
const TIMEOUT_MS = 15_000;

const help = spawnSync(process.execPath, [mainJs, 'registry', '--help'], { encoding: 'utf8', timeout: TIMEOUT_MS });
const commandWired = help.status === 0 && help.stdout.includes('NSM_LISTEN_ON');
const skip = commandWired ? false : `\`nsm registry\` is not wired into ${mainJs} yet (help exit ${help.status}); the lead registers src/cli/commands/registry.ts`;
if (skip) process.stdout.write(`# skipping registry process tests: ${skip}\n`);

const children = new Set<ChildProcess>();
const dirs: string[] = [];

after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function start(env: Record<string, string>): { child: ChildProcess; stderr: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [mainJs, 'registry'], {
    env: { PATH: process.env.PATH ?? '', NSM_INSECURE: 'true', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => {
    children.delete(child);
    res(code);
  }));
  return { child, stderr: () => err, exited };
}

function within<T>(p: Promise<T>, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timed out: ${what}`)), TIMEOUT_MS))),
  ]);
}

describe('nsm registry process', { skip }, () => {
  it('NSM_LISTEN_ON=http://x exits 2 naming NSM_LISTEN_ON', async () => {
    const p = start({ NSM_LISTEN_ON: 'http://x' });
    assert.equal(await within(p.exited, 'exit'), 2);
    assert.match(p.stderr(), /NSM_LISTEN_ON/);
  });

  it('a good config becomes ready, serves, and stops on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nsm-regp-'));
    dirs.push(dir);
    const sock = join(dir, 'registry.sock');
    const p = start({ NSM_LISTEN_ON: `unix://${sock}`, NSM_EXPIRE_PERIOD: '2s', NSM_LOG_LEVEL: 'INFO' });
    await within(
      new Promise<void>((res, rej) => {
        const check = () => (/"msg":"ready"/.test(p.stderr()) ? res() : undefined);
        p.child.stderr!.on('data', check);
        p.exited.then((code) => rej(new Error(`exited ${code} before ready: ${p.stderr()}`)));
        check();
      }),
      'ready',
    );
    const ch = createChannel(`unix://${sock}`);
    try {
      const health = createClient(HealthDefinition, ch);
      assert.equal((await health.check({ service: 'registry.NetworkServiceEndpointRegistry' })).status, HealthCheckResponse_ServingStatus.SERVING);
      const reg = createClient(NetworkServiceEndpointRegistryDefinition, ch);
      const resp = await reg.register({ name: 'p-nse', url: 'tcp://127.0.0.1:1', networkServiceNames: ['x'] });
      assert.ok(resp.expirationTime);
    } finally {
      ch.close();
    }
    p.child.kill('SIGTERM');
    assert.equal(await within(p.exited, 'exit after SIGTERM'), 0);
    assert.equal(existsSync(sock), false, 'socket removed');
  });
});
