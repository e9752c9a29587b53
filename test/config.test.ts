/**
 * Config validation at the process edge: real `nsm <component>` processes with bad env exit 2 and name
 * the variable and the value; `--help` lists every env var of the component's schema. No root needed:
 * every case fails before anything is started (a process that starts anyway is killed after a timeout
 * and the test fails).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import type { ConfigSchema, EnvVar } from '../src/components/config.js';
import { forwarderConfig } from '../src/components/forwarder/config.js';
import { nscConfig } from '../src/components/nsc/config.js';
import { nseConfig } from '../src/components/nse/config.js';
import { nsmgrConfig } from '../src/components/nsmgr/config.js';
import { registryConfig } from '../src/components/registry/config.js';

const MAIN = join(resolve(new URL('../..', import.meta.url).pathname), 'dist/src/cli/main.js');
const TIMEOUT_MS = 10_000;

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `node main.js ...args` with only `env` (plus PATH), killing it (by its pid) after TIMEOUT_MS. */
function nsm(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.once('error', (err) => (clearTimeout(t), rej(err)));
    child.once('close', (code, signal) => (clearTimeout(t), res({ code, signal, stdout, stderr })));
  });
}

const SERVICES = { NSM_NETWORK_SERVICES: 'kernel://dataplane-interrupt/nsm-1' };

const BAD: Array<{ component: string; env: Record<string, string>; variable: string; value: string }> = [
  { component: 'nse', env: { NSM_CIDR_PREFIX: '300.1.1.1/33' }, variable: 'NSM_CIDR_PREFIX', value: '300.1.1.1/33' },
  { component: 'nsc', env: { ...SERVICES, NSM_DIAL_TIMEOUT: '5' }, variable: 'NSM_DIAL_TIMEOUT', value: '5' },
  { component: 'nsc', env: { NSM_NETWORK_SERVICES: 'kernel:///nsm-1' }, variable: 'NSM_NETWORK_SERVICES', value: 'kernel:///nsm-1' },
  { component: 'nse', env: { NSM_IPAM_POLICY: 'random' }, variable: 'NSM_IPAM_POLICY', value: 'random' },
  { component: 'nsmgr', env: { NSM_LISTEN_ON: 'http://x' }, variable: 'NSM_LISTEN_ON', value: 'http://x' },
  { component: 'registry', env: { NSM_LISTEN_ON: 'ftp://x' }, variable: 'NSM_LISTEN_ON', value: 'ftp://x' },
  { component: 'nsc', env: {}, variable: 'NSM_NETWORK_SERVICES', value: '' },
  // identity (issue 13): a malformed Workload API socket, whatever NSM_INSECURE says
  { component: 'registry', env: { SPIFFE_ENDPOINT_SOCKET: 'tcp://127.0.0.1:8081' }, variable: 'SPIFFE_ENDPOINT_SOCKET', value: 'tcp://127.0.0.1:8081' },
  { component: 'registry-k8s', env: { SPIFFE_ENDPOINT_SOCKET: '/run/spire/sockets/agent.sock' }, variable: 'SPIFFE_ENDPOINT_SOCKET', value: '/run/spire/sockets/agent.sock' },
  { component: 'nsmgr', env: { NSM_LISTEN_ON: 'unix:///tmp/nsmt-unused.sock', SPIFFE_ENDPOINT_SOCKET: 'unix://host/agent.sock', NSM_INSECURE: 'true' }, variable: 'SPIFFE_ENDPOINT_SOCKET', value: 'unix://host/agent.sock' },
  { component: 'forwarder', env: { NSM_LISTEN_ON: 'unix:///tmp/nsmt-unused.sock', SPIFFE_ENDPOINT_SOCKET: 'unix:relative.sock' }, variable: 'SPIFFE_ENDPOINT_SOCKET', value: 'unix:relative.sock' },
  { component: 'nse', env: { SPIFFE_ENDPOINT_SOCKET: 'agent.sock' }, variable: 'SPIFFE_ENDPOINT_SOCKET', value: 'agent.sock' },
  { component: 'nsc', env: { ...SERVICES, SPIFFE_ENDPOINT_SOCKET: 'unix:///x/agent.sock#f' }, variable: 'SPIFFE_ENDPOINT_SOCKET', value: 'unix:///x/agent.sock#f' },
  { component: 'nsc', env: { ...SERVICES, NSM_INSECURE: 'perhaps' }, variable: 'NSM_INSECURE', value: 'perhaps' },
];

describe('nsm <component> with a bad env: exit 2, naming the variable and the value', () => {
  for (const c of BAD) {
    const shown = Object.entries(c.env).filter(([k]) => k === c.variable).map(([k, v]) => `${k}=${v}`)[0] ?? `no ${c.variable}`;
    it(`nsm ${c.component} with ${shown}`, async () => {
      const r = await nsm([c.component], c.env);
      assert.equal(r.signal, null, `killed after ${TIMEOUT_MS} ms: the process started despite the bad value\n${r.stderr}`);
      assert.equal(r.code, 2, `exit code (stderr: ${r.stderr})`);
      const line = r.stderr.trim();
      assert.match(line, new RegExp(`^nsm ${c.component}: invalid configuration: `), line);
      assert.ok(line.includes(c.variable), `names ${c.variable}: ${line}`);
      if (c.value) assert.ok(line.includes(c.value), `names the value ${c.value}: ${line}`);
      else assert.match(line, /required/, line);
      assert.equal(line.split('\n').length, 1, 'one line, no stack trace');
    });
  }
});

describe('nsm <component> --help lists its env vars', () => {
  const schemas = [registryConfig, nsmgrConfig, forwarderConfig, nseConfig, nscConfig] as unknown as ConfigSchema<Record<string, EnvVar<unknown>>>[];
  for (const schema of schemas) {
    it(`nsm ${schema.component} --help`, async () => {
      const r = await nsm([schema.component, '--help']);
      assert.equal(r.code, 0, r.stderr);
      for (const v of Object.values(schema.vars)) assert.ok(r.stdout.includes(v.name), `--help of ${schema.component} lists ${v.name}`);
    });
  }
});
