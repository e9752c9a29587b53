import { test } from 'node:test';
import assert from 'node:assert/strict';
import { restartDelay, baseEnv, DEFAULT_BACKOFF } from './supervisor.js';
import { parseEnvPairs, statusSaysReady } from './pods.js';
import { componentEnv, runPaths, resolveRunDir, DEFAULT_RUN_DIR } from './paths.js';
import { isRunning, procStartTime, recordFor } from './proc.js';

test('restart backoff: immediate, then 0.2 s doubling, capped at 5 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7, 20].map((n) => restartDelay(n)), [0, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
  assert.equal(DEFAULT_BACKOFF.resetAfterMs, 30_000);
});

test('component env: upstream names, fixed sockets, same NSM_NAME per host', () => {
  const p = runPaths('/run/x');
  assert.deepEqual(componentEnv(p, 'nsmgr', 'h1'), {
    NSM_LISTEN_ON: 'unix:///run/x/nsm.io.sock',
    NSM_REGISTRY_URL: 'unix:///run/x/registry.sock',
    NSM_NAME: 'nsmgr-h1',
    NODE_NAME: 'h1',
    SPIFFE_ENDPOINT_SOCKET: 'unix:///run/x/agent.sock',
  });
  assert.deepEqual(
    (['registry', 'nsmgr', 'forwarder'] as const).map((c) => [componentEnv(p, c, 'h1', 'insecure').NSM_INSECURE, componentEnv(p, c, 'h1', 'insecure').SPIFFE_ENDPOINT_SOCKET]),
    [
      ['true', undefined],
      ['true', undefined],
      ['true', undefined],
    ],
  );
  assert.equal(componentEnv(p, 'registry', 'h1').NSM_INSECURE, undefined, 'secure by default');
  assert.equal(componentEnv(p, 'forwarder', 'h1').NSM_CONNECT_TO, 'unix:///run/x/nsm.io.sock');
  assert.equal(componentEnv(p, 'registry', 'h1').NSM_LISTEN_ON, 'unix:///run/x/registry.sock');
  assert.equal(resolveRunDir(undefined, {}), DEFAULT_RUN_DIR);
  assert.equal(resolveRunDir(undefined, { NSM_RUN_DIR: '/a' }), '/a');
  assert.equal(resolveRunDir('/b', { NSM_RUN_DIR: '/a' }), '/b');
  assert.equal(resolveRunDir(undefined, { NSM_RUN_DIR: '' }), DEFAULT_RUN_DIR);
});

test('base env drops inherited NSM_* except the log level, and SPIFFE_ENDPOINT_SOCKET', () => {
  assert.deepEqual(baseEnv({ PATH: '/bin', NSM_NAME: 'x', NSM_LOG_LEVEL: 'DEBUG', NSM_INSECURE: 'true', SPIFFE_ENDPOINT_SOCKET: 'unix:///x' }), { PATH: '/bin', NSM_LOG_LEVEL: 'DEBUG' });
});

test('-e pairs', () => {
  assert.deepEqual(parseEnvPairs(['A=1', 'B=x=y', 'C=']), { A: '1', B: 'x=y', C: '' });
  assert.throws(() => parseEnvPairs(['=1']), { name: 'InvalidArgumentError' });
  assert.throws(() => parseEnvPairs(['A-B=1']), { name: 'InvalidArgumentError' });
});

test('status file readiness', () => {
  assert.equal(statusSaysReady({ state: 'connected' }), true);
  assert.equal(statusSaysReady({ state: 'CONNECTING' }), false);
  assert.equal(statusSaysReady({ connected: true }), true);
  assert.equal(statusSaysReady({ connections: [{ state: 'UP' }, { state: 'connected' }] }), true);
  assert.equal(statusSaysReady({ connections: [{ state: 'UP' }, { state: 'DOWN' }] }), false);
  assert.equal(statusSaysReady({ connections: [] }), false);
  assert.equal(statusSaysReady(undefined), false);
});

test('process identity is pid + start time', () => {
  const me = recordFor(process.pid);
  assert.equal(me.startTime, procStartTime(process.pid));
  assert.equal(isRunning(me), true);
  assert.equal(isRunning({ ...me, startTime: me.startTime + 1 }), false);
  assert.equal(isRunning({ ...me, pid: 1 }), false);
});
