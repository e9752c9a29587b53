import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { ConfigError } from '../core/errors.js';
import { DEFAULT_WORKLOAD_API_SOCKET, defineConfig, env, formatDuration, identityVars, parseBool, parseDuration, parseLabels, parseList, unixSocketExists } from './config.js';
import { forwarderConfig } from './forwarder/config.js';
import { nscConfig } from './nsc/config.js';
import { nseConfig } from './nse/config.js';
import { nsmgrConfig } from './nsmgr/config.js';
import { registryK8sConfig } from './registry-k8s/config.js';
import { registryConfig } from './registry/config.js';

describe('parseDuration (Go durations, in ms)', () => {
  for (const [raw, ms] of [
    ['0', 0],
    ['200ms', 200],
    ['15s', 15_000],
    ['10m', 600_000],
    ['1h', 3_600_000],
    ['1m30s', 90_000],
    ['1.5s', 1500],
    ['-1m', -60_000],
    ['+2s', 2000],
    ['500us', 0.5],
    ['1000000ns', 1],
    [' 3s ', 3000],
  ] as const) {
    it(`${JSON.stringify(raw)} = ${ms} ms`, () => assert.equal(parseDuration(raw), ms));
  }

  it('a number without unit is refused with a hint', () => {
    assert.throws(() => parseDuration('5'), /without unit; write e\.g\. 200ms/);
    assert.throws(() => parseDuration('1.5'), /without unit/);
  });

  for (const raw of ['', 's', '5 s', '5sec', '1d', 'ms5', '1m-30s', 'abc']) {
    it(`${JSON.stringify(raw)} is not a duration`, () => assert.throws(() => parseDuration(raw), /not a duration/));
  }

  it('formatDuration picks the largest exact unit', () => {
    assert.deepEqual([0, 200, 1000, 90_000, 600_000, 7_200_000].map(formatDuration), ['0s', '200ms', '1s', '90s', '10m', '2h']);
  });
});

describe('parseLabels, parseList, parseBool', () => {
  it('labels: k:v and k=v, comma-separated, trimmed, empty = none', () => {
    assert.deepEqual(parseLabels('app:nsc, color=red ,url:http://x:1'), { app: 'nsc', color: 'red', url: 'http://x:1' });
    assert.deepEqual(parseLabels(''), {});
    assert.deepEqual(parseLabels(' , '), {});
    assert.deepEqual(parseLabels('k:'), { k: '' });
  });

  for (const raw of ['novalue', ':v', 'a:b,c']) {
    it(`labels ${JSON.stringify(raw)} is refused naming the item`, () => assert.throws(() => parseLabels(raw), /is not key:value/));
  }

  it('list: comma-separated, trimmed, empty items dropped', () => {
    assert.deepEqual(parseList(' a, b ,,c '), ['a', 'b', 'c']);
    assert.deepEqual(parseList(''), []);
  });

  it('bool: Go strconv.ParseBool spellings (and yes/no), case-insensitive; empty = false', () => {
    for (const t of ['true', 'TRUE', 'True', '1', 't', 'T', 'yes']) assert.equal(parseBool(t), true, t);
    for (const f of ['false', 'FALSE', '0', 'f', 'no', '']) assert.equal(parseBool(f), false, f);
    assert.throws(() => parseBool('maybe'), /not a boolean/);
    assert.throws(() => parseBool('2'), /not a boolean/);
  });
});

describe('defineConfig', () => {
  const schema = defineConfig('demo', {
    name: env.string('NSM_NAME', 'the name', { default: 'demo' }),
    timeout: env.duration('NSM_TIMEOUT', 'a timeout', { default: '5s', min: 1 }),
    services: env.list('NSM_SERVICES', 'the services', { required: true }),
    labels: env.labels('NSM_LABELS', 'labels', { default: '' }),
    debug: env.bool('NSM_DEBUG', 'debug | on', { default: 'false' }),
    count: env.int('NSM_COUNT', 'a count', { default: '3', min: 1, max: 10 }),
    mode: env.oneOf('NSM_MODE', 'a mode', ['fast', 'slow'] as const, { default: 'fast' }),
  });
  const valid = { NSM_SERVICES: 'a,b' };

  it('parses with defaults; an empty value is fine where empty is the default', () => {
    const c = schema.parse({ ...valid, NSM_LABELS: '', NSM_MODE: 'SLOW' });
    assert.deepEqual({ ...c }, { name: 'demo', timeout: 5000, services: ['a', 'b'], labels: {}, debug: false, count: 3, mode: 'slow' });
    assert.ok(Object.isFrozen(c));
  });

  for (const [name, value, reason] of [
    ['NSM_SERVICES', undefined, /required/],
    ['NSM_TIMEOUT', '5', /without unit/],
    ['NSM_TIMEOUT', '0s', /at least 1ms/],
    ['NSM_COUNT', '11', /<= 10/],
    ['NSM_COUNT', 'x', /not an integer/],
    ['NSM_MODE', 'medium', /one of fast, slow/],
    ['NSM_LABELS', 'oops', /key:value/],
    ['NSM_NAME', '', /set but empty; unset it for the default \(demo\)/],
    ['NSM_TIMEOUT', ' ', /set but empty/],
    ['NSM_TIMEOUT', '25h', /at most 24h/],
  ] as const) {
    it(`${name}=${String(value)} is a ConfigError naming the variable and the value`, () => {
      const e = { ...valid, ...(value === undefined ? { NSM_SERVICES: undefined } : { [name]: value }) };
      assert.throws(
        () => schema.parse(e),
        (err: unknown) =>
          err instanceof ConfigError && err.variable === name && err.message.startsWith(`${name}=${JSON.stringify(value ?? '')}`) && reason.test(err.message),
      );
    });
  }

  it('durations are bounded (default 24h) and the bounds are documented', () => {
    const s = defineConfig('d', { t: env.duration('NSM_T', 't', { default: '1m', min: 1, max: 3_600_000 }) });
    assert.throws(() => s.parse({ NSM_T: '600h' }), /NSM_T="600h": must be at most 1h/);
    assert.equal(s.parse({ NSM_T: '1h' }).t, 3_600_000);
    assert.match(s.markdown(), /\| `NSM_T` \| `1m` \| t \(1ms–1h\) \|/);
    assert.match(schema.markdown(), /a timeout \(1ms–24h\)/);
    assert.match(schema.markdown(), /a count \(1–10\)/);
  });

  it('a unix listen URL needs an existing directory; nothing is created', () => {
    const s = defineConfig('l', { on: env.urls('NSM_LISTEN_ON', 'where', { default: 'unix:///tmp/x.sock', listen: true }) });
    assert.throws(() => s.parse({ NSM_LISTEN_ON: 'unix:///nonexistent-nsm-dir/x.sock' }), /directory \/nonexistent-nsm-dir does not exist/);
    assert.equal(existsSync('/nonexistent-nsm-dir'), false);
    assert.deepEqual([...s.parse({ NSM_LISTEN_ON: 'unix:///tmp/x.sock,tcp://:5002' }).on], ['unix:///tmp/x.sock', 'tcp://:5002']);
  });

  it('describe(): NAME=value per variable, in schema order, defaults marked', () => {
    assert.deepEqual(schema.describe({ ...valid, NSM_TIMEOUT: '1m', NSM_LABELS: '' }), [
      'NSM_NAME=demo (default)',
      'NSM_TIMEOUT=1m',
      'NSM_SERVICES=a,b',
      'NSM_LABELS= (default)',
      'NSM_DEBUG=false (default)',
      'NSM_COUNT=3 (default)',
      'NSM_MODE=fast (default)',
    ]);
  });

  it('markdown(): a table with one row per variable, required and defaults shown, pipes escaped', () => {
    const md = schema.markdown().split('\n');
    assert.equal(md[0], '| variable | default | meaning |');
    assert.equal(md[1], '|---|---|---|');
    assert.equal(md.length, 2 + Object.keys(schema.vars).length);
    assert.equal(md[2], '| `NSM_NAME` | `demo` | the name |');
    assert.equal(md[4], '| `NSM_SERVICES` | (required) | the services |');
    assert.equal(md[5], '| `NSM_LABELS` |  | labels |');
    assert.equal(md[6], '| `NSM_DEBUG` | `false` | debug \\| on |', 'a | in a description must not break the table');
  });
});

/** A real unix socket listening at `<tmp>/agent.sock` (what a mesh's Workload API leaves on disk), removed after the test. */
async function listeningSocket(t: TestContext): Promise<{ dir: string; url: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-cfg-'));
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(join(dir, 'agent.sock'), resolve));
  t.after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, url: `unix://${join(dir, 'agent.sock')}` };
}

describe('identity variables (SPIFFE_ENDPOINT_SOCKET, NSM_INSECURE)', () => {
  const isConfigError = (variable: string) => (err: unknown) => err instanceof ConfigError && err.variable === variable && err.message.includes(variable);

  it('unset, the default socket present: the default, secure', async (t) => {
    const { url } = await listeningSocket(t);
    const s = defineConfig('id', identityVars({ defaultSocket: url }));
    assert.deepEqual({ ...s.parse({}) }, { spiffeEndpointSocket: url, insecure: false });
  });

  it('unset, no default socket: a ConfigError naming SPIFFE_ENDPOINT_SOCKET and the default it looked for', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nsm-cfg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const missing = `unix://${join(dir, 'agent.sock')}`;
    const s = defineConfig('id', identityVars({ defaultSocket: missing }));
    assert.throws(() => s.parse({}), isConfigError('SPIFFE_ENDPOINT_SOCKET'));
    assert.throws(() => s.parse({}), (err: Error) => err.message.includes(missing) && err.message.includes('NSM_INSECURE=true'));
    assert.throws(() => s.parse({ NSM_INSECURE: 'false' }), isConfigError('SPIFFE_ENDPOINT_SOCKET'));
    // a regular file where the socket should be is no Workload API
    writeFileSync(join(dir, 'agent.sock'), '');
    assert.throws(() => s.parse({}), isConfigError('SPIFFE_ENDPOINT_SOCKET'));
  });

  it('unset with NSM_INSECURE=true: plaintext, no socket needed', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nsm-cfg-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const s = defineConfig('id', identityVars({ defaultSocket: `unix://${join(dir, 'agent.sock')}` }));
    for (const v of ['true', 'TRUE', '1']) assert.deepEqual({ ...s.parse({ NSM_INSECURE: v }) }, { spiffeEndpointSocket: undefined, insecure: true }, v);
  });

  it('set: taken as given (unix:/abs normalized to unix:///abs), whether the socket exists yet or not', () => {
    const s = defineConfig('id', identityVars({ defaultSocket: 'unix:///nonexistent-nsm-dir/agent.sock' }));
    assert.equal(s.parse({ SPIFFE_ENDPOINT_SOCKET: 'unix:///run/spire/sockets/agent.sock' }).spiffeEndpointSocket, 'unix:///run/spire/sockets/agent.sock');
    assert.equal(s.parse({ SPIFFE_ENDPOINT_SOCKET: 'unix:/run/spire/sockets/agent.sock' }).spiffeEndpointSocket, 'unix:///run/spire/sockets/agent.sock');
    assert.equal(s.parse({ SPIFFE_ENDPOINT_SOCKET: ' unix:///x/agent.sock ', NSM_INSECURE: 'true' }).insecure, true);
  });

  for (const [name, value] of [
    ['SPIFFE_ENDPOINT_SOCKET', 'tcp://127.0.0.1:8081'],
    ['SPIFFE_ENDPOINT_SOCKET', '/run/spire/sockets/agent.sock'],
    ['SPIFFE_ENDPOINT_SOCKET', 'unix://host/agent.sock'],
    ['SPIFFE_ENDPOINT_SOCKET', 'unix:relative/agent.sock'],
    ['SPIFFE_ENDPOINT_SOCKET', 'unix:///x/agent.sock?x=1'],
    ['SPIFFE_ENDPOINT_SOCKET', `unix:///${'a'.repeat(120)}`],
    ['SPIFFE_ENDPOINT_SOCKET', 'not a uri'],
    ['NSM_INSECURE', 'maybe'],
    ['NSM_INSECURE', ' '],
  ]) {
    it(`${name}=${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)} is a ConfigError naming ${name} (even when insecure)`, () => {
      const s = defineConfig('id', identityVars());
      const extra = name === 'NSM_INSECURE' ? {} : { NSM_INSECURE: 'true' };
      assert.throws(() => s.parse({ ...extra, [name]: value }), isConfigError(name));
    });
  }

  it('every component has both variables, with the mesh default socket', () => {
    for (const schema of [registryConfig, registryK8sConfig, nsmgrConfig, forwarderConfig, nseConfig, nscConfig]) {
      const names = Object.values(schema.vars as Record<string, { name: string }>).map((v) => v.name);
      assert.ok(names.includes('SPIFFE_ENDPOINT_SOCKET') && names.includes('NSM_INSECURE'), schema.component);
      assert.match(schema.markdown(), new RegExp(`SPIFFE_ENDPOINT_SOCKET\` \\|[^|]*\\| [^|]*${DEFAULT_WORKLOAD_API_SOCKET.replace(/\//g, '\\/')}`), schema.component);
    }
    assert.equal(DEFAULT_WORKLOAD_API_SOCKET, 'unix:///var/lib/networkservicemesh/agent.sock');
  });

  it('NSM_MAX_TOKEN_LIFETIME below 1s (what the token generators refuse) is a ConfigError naming it on every component', () => {
    for (const schema of [registryConfig, registryK8sConfig, nsmgrConfig, forwarderConfig, nseConfig, nscConfig]) {
      const base = { NSM_INSECURE: 'true', NSM_NETWORK_SERVICES: 'kernel://s/nsm-1', NSM_LISTEN_ON: 'unix:///tmp/x.sock' };
      assert.throws(() => schema.parse({ ...base, NSM_MAX_TOKEN_LIFETIME: '500ms' }), isConfigError('NSM_MAX_TOKEN_LIFETIME'), schema.component);
      assert.equal(schema.parse({ ...base, NSM_MAX_TOKEN_LIFETIME: '1s' }).maxTokenLifetime, 1000, schema.component);
    }
  });

  it('unixSocketExists: a listening socket yes; a file, a directory, nothing no', async (t) => {
    const { dir, url } = await listeningSocket(t);
    assert.equal(unixSocketExists(url), true);
    assert.equal(unixSocketExists(url.replace('unix://', 'unix:')), true);
    writeFileSync(join(dir, 'file'), '');
    assert.equal(unixSocketExists(`unix://${join(dir, 'file')}`), false);
    assert.equal(unixSocketExists(`unix://${dir}`), false);
    assert.equal(unixSocketExists(`unix://${join(dir, 'none')}`), false);
  });
});
