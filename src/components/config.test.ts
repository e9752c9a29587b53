import { existsSync } from 'node:fs';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError } from '../core/errors.js';
import { defineConfig, env, formatDuration, parseBool, parseDuration, parseLabels, parseList } from './config.js';

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
