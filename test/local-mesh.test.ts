/**
 * End-to-end test of the local mesh (`nsm up|status|run|stop-pod|down`) with real processes and a real
 * netns. Root only (skipped with the reason otherwise). Each test uses its own run dir under /tmp and
 * netns names starting `nsmt-`; everything is cleaned up even when an assertion fails.
 *
 * The CLI under test is `dist/src/cli/main.js` once it wires the local-mesh commands, else the test shim
 * `dist/src/local/testdata/cli-shim.js` (real component commands where they exist, fakes otherwise);
 * `NSM_TEST_CLI=<path>` overrides.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRunning, findTool } from '../src/local/proc.js';
import { eventually, LocalMeshFixture, tmpLeftovers, type Result } from './local-mesh-fixture.js';

const dist = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(dist, 'src/cli/main.js');
const SHIM = join(dist, 'src/local/testdata/cli-shim.js');

function pickCli(): string {
  if (process.env.NSM_TEST_CLI) return process.env.NSM_TEST_CLI;
  const help = spawnSync(process.execPath, [MAIN, '--help'], { encoding: 'utf8' }).stdout ?? '';
  const has = (c: string) => new RegExp(`^\\s+${c}\\b`, 'm').test(help);
  return ['up', 'down', 'status', 'run', 'stop-pod', 'registry', 'nsmgr', 'forwarder', 'nse'].every(has) ? MAIN : SHIM;
}

const skip = process.getuid?.() !== 0 ? 'needs root (creates network namespaces and runs the mesh)' : !findTool('ip') ? 'needs iproute2 (ip)' : false;
const CLI = skip ? SHIM : pickCli();

function nsm(args: string[], opts: { asNobody?: boolean; timeoutMs?: number; env?: Record<string, string>; cli?: string } = {}): Result {
  const argv = [process.execPath, opts.cli ?? CLI, ...args];
  const [cmd, ...rest] = opts.asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...argv] : argv;
  const r = spawnSync(cmd, rest, { encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, env: { ...process.env, NSM_RUN_DIR: '', ...opts.env } });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function must(args: string[]): Result {
  const r = nsm(args);
  assert.equal(r.code, 0, `nsm ${args.join(' ')} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  return r;
}

const fixtures: LocalMeshFixture[] = [];
const fixture = () => {
  const f = new LocalMeshFixture('lm', (args) => nsm(args));
  fixtures.push(f);
  return f;
};
after(() => {
  for (const f of fixtures) f.cleanup();
});

describe('local mesh', { skip }, () => {
  test(`up, supervise and restart, run a pod, down (cli ${CLI.replace(dist, 'dist/')})`, { timeout: 180_000 }, async () => {
    const f = fixture();
    const d = ['--run-dir', f.dir];
    try {
      const up = must(['up', ...d]);
      assert.match(up.stdout, /mesh is up/);
      let s = f.status();
      assert.equal(s.up, true);
      assert.deepEqual(
        s.components.map((c) => [c.name, c.state, c.restarts]),
        [
          ['registry', 'up', 0],
          ['nsmgr', 'up', 0],
          ['forwarder', 'up', 0],
        ],
      );
      for (const sock of ['registry.sock', 'nsm.io.sock', 'forwarder.sock']) assert.ok(statSync(join(f.dir, sock)).isSocket(), sock);

      // up again: already up, nothing new started.
      const again = must(['up', ...d]);
      assert.match(again.stdout, /already up/);
      assert.equal(f.status().supervisor?.pid, s.supervisor?.pid);

      // kill -9 nsmgr: the supervisor restarts it with the same env.
      const old = f.state()!.components.nsmgr!;
      process.kill(old.pid, 'SIGKILL');
      s = await eventually('nsmgr restarted and SERVING', () => {
        const st = f.status();
        const n = st.components.find((c) => c.name === 'nsmgr')!;
        return n.restarts === 1 && n.state === 'up' && n.pid !== old.pid && st;
      });
      const env = readFileSync(`/proc/${f.state()!.components.nsmgr!.pid}/environ`, 'utf8').split('\0');
      assert.ok(env.includes(`NSM_LISTEN_ON=unix://${join(f.dir, 'nsm.io.sock')}`), 'same NSM_LISTEN_ON after restart');
      assert.ok(env.some((e) => /^NSM_NAME=nsmgr-/.test(e)), 'same NSM_NAME after restart');

      // run an NSE in a pod netns.
      const pod = f.pod('nse');
      const r = must([
        'run', 'nse', '--pod', pod, ...d,
        '-e', 'NSM_SERVICE_NAMES=nsmt-lm-svc',
        '-e', 'NSM_CIDR_PREFIX=172.16.1.100/31',
        '-e', `NSM_TEST_REGISTRY_URL=unix://${join(f.dir, 'registry.sock')}`,
        '--wait', '--timeout', '20s',
      ]);
      assert.match(r.stdout, /ready in pod/);
      const proc = f.state()!.pods[pod]!.processes[0]!;
      assert.equal(proc.component, 'nse');
      assert.equal(proc.name, pod);
      assert.equal(statSync(`/proc/${proc.pid}/ns/net`).ino, statSync(`/run/netns/${pod}`).ino, 'nse runs inside the pod netns');
      const envNse = readFileSync(`/proc/${proc.pid}/environ`, 'utf8').split('\0');
      for (const e of [`POD_NAME=${pod}`, `NSM_CONNECT_TO=unix://${join(f.dir, 'nsm.io.sock')}`, `NSM_STATUS_FILE=${join(f.dir, 'pods', `${pod}-nse.json`)}`]) {
        assert.ok(envNse.includes(e), e);
      }
      s = f.status();
      assert.ok(s.endpoints.some((e) => e.name === pod), `status lists endpoint ${pod}: ${JSON.stringify(s.endpoints)}`);
      assert.ok(s.pods.some((p) => p.pod === pod && p.running));

      // a second nse in the same pod is refused.
      const dup = nsm(['run', 'nse', '--pod', pod, ...d]);
      assert.equal(dup.code, 1);
      assert.match(dup.stderr, /already runs nse/);

      // down: nothing recorded runs any more, no netns, no socket.
      const recorded = f.running();
      assert.ok(recorded.length >= 5, `supervisor, 3 components and the nse are recorded (${recorded.length})`);
      const down = must(['down', ...d]);
      assert.match(down.stdout, /mesh is down/);
      assert.deepEqual(recorded.filter((x) => isRunning(x)).map((x) => x.pid), [], 'no recorded process left');
      assert.equal(existsSync(`/run/netns/${pod}`), false, 'pod netns deleted');
      assert.deepEqual(readdirSync(f.dir).filter((n) => n.endsWith('.sock')), [], 'no socket left');
      assert.ok(existsSync(join(f.dir, 'logs', 'nsmgr.log')), 'logs kept');
      assert.deepEqual(tmpLeftovers([pod]), [], 'the nse removed its temp dir');

      const down2 = must(['down', ...d]);
      assert.match(down2.stdout, /nothing runs/);
      const st = must(['status', ...d]);
      assert.match(st.stdout, /mesh is not up/);
    } finally {
      f.cleanup();
    }
  });

  test('stop-pod stops the pod and deletes the netns the mesh created; run refuses when the mesh is down', { timeout: 120_000 }, async () => {
    const f = fixture();
    const d = ['--run-dir', f.dir];
    try {
      const pod = f.pod('a');
      const refused = nsm(['run', 'nse', '--pod', pod, ...d]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /mesh is not up/);
      assert.equal(existsSync(`/run/netns/${pod}`), false, 'no netns created when refused');

      must(['up', ...d]);
      must(['run', 'nse', '--pod', pod, ...d, '-e', 'NSM_SERVICE_NAMES=nsmt-lm-svc-a']);
      const proc = f.state()!.pods[pod]!.processes[0]!;
      assert.ok(isRunning(proc));
      const r = must(['stop-pod', pod, ...d]);
      assert.match(r.stdout, /stopped 1 process, deleted netns/);
      assert.equal(isRunning(proc), false);
      assert.equal(existsSync(`/run/netns/${pod}`), false);
      assert.equal(f.state()!.pods[pod], undefined);
      assert.deepEqual(tmpLeftovers([pod]), [], 'the nse removed its temp dir');
      must(['down', ...d]);
    } finally {
      f.cleanup();
    }
  });

  test('up names a socket held by a foreign process, with its pid', { timeout: 60_000 }, async () => {
    const f = fixture();
    let holder: ChildProcess | undefined;
    try {
      const sock = join(f.dir, 'nsm.io.sock');
      holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('listening'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((res) => holder!.stdout!.once('data', () => res()));
      const r = nsm(['up', '--run-dir', f.dir]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`socket ${sock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(nsmgr\\) is in use by pid ${holder.pid}`));
      assert.equal(f.state()?.supervisor, undefined, 'no supervisor started');
    } finally {
      holder?.kill('SIGKILL');
      f.cleanup();
    }
  });

  test('up fails early and rolls back when a component crash-loops', { timeout: 60_000 }, () => {
    const f = fixture();
    try {
      const t0 = Date.now();
      const r = nsm(['up', '--run-dir', f.dir], { env: { NSMT_CRASH: 'nsmgr' }, cli: SHIM });
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /nsmgr keeps exiting during start/);
      assert.match(r.stderr, /crashing on purpose/, 'tail of the log is shown');
      assert.ok(Date.now() - t0 < 15_000, 'before the 20 s timeout');
      assert.deepEqual(f.running().map((x) => x.pid), [], 'rolled back');
      assert.deepEqual(readdirSync(f.dir).filter((n) => n.endsWith('.sock')), [], 'no socket left');
    } finally {
      f.cleanup();
    }
  });

  test('not root: one clear line', { skip: skip || (findTool('setpriv') ? false : 'setpriv not installed') }, () => {
    const f = fixture();
    try {
      for (const cmd of ['up', 'run']) {
        const r = nsm(cmd === 'up' ? ['up', '--run-dir', f.dir] : ['run', 'nsc', '--pod', 'nsmt-x', '--run-dir', f.dir], { asNobody: true });
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /root is needed to create network namespaces and veth interfaces/);
        assert.equal(r.stderr.trim().split('\n').length, 1);
      }
    } finally {
      f.cleanup();
    }
  });
});
