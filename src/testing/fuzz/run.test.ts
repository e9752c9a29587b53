import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidArgumentError } from '../../core/errors.js';
import { checkFuzz, DEFAULT_FUZZ_SEED, fuzzSettings, knownDefect } from './run.js';

describe('fuzz runner', () => {
  it('seed: NSM_FUZZ_SEED when set, else the fixed default; bad values name the variable', () => {
    assert.equal(fuzzSettings({}).seed, DEFAULT_FUZZ_SEED);
    assert.equal(fuzzSettings({ NSM_FUZZ_SEED: '-42' }).seed, -42);
    for (const bad of ['x', '1.5', '99999999999', '2147483648']) {
      assert.throws(() => fuzzSettings({ NSM_FUZZ_SEED: bad }), (e: Error) => e instanceof InvalidArgumentError && e.message.includes('NSM_FUZZ_SEED'));
    }
    assert.deepEqual(fuzzSettings({ NSM_FUZZ_PATH: 'p-1@3:0:2' }).replay, { property: 'p-1', path: '3:0:2' });
    assert.throws(() => fuzzSettings({ NSM_FUZZ_PATH: '3:0' }), InvalidArgumentError);
    assert.throws(() => fuzzSettings({ NSM_FUZZ_SCALE: '0' }), InvalidArgumentError);
    assert.equal(knownDefect('why', {}), 'why');
    assert.equal(knownDefect('why', { NSM_FUZZ_KNOWN_DEFECTS: '1' }), undefined);
  });

  it('a failure reports seed, path, counterexample and the replay command; replaying the path fails the same way', async () => {
    const lines: string[] = [];
    const settings = fuzzSettings({ NSM_FUZZ_SEED: '7' });
    const pred = async (n: number) => assert.ok(n < 50, `${n} is too big`);
    const err = await checkFuzz('demo', fc.integer({ min: 0, max: 100 }), pred, { runs: 200, timeMs: 5000 }, settings, (l) => lines.push(l)).then(
      () => assert.fail('expected a failure'),
      (e: Error) => e,
    );
    assert.match(lines[0]!, /^# fuzz demo: seed 7, up to 200 runs or 5 s$/);
    assert.match(err.message, /seed 7, path [\d:]+/);
    assert.match(err.message, /counterexample: \[50\]/, 'shrunk to the smallest failing value');
    const path = /NSM_FUZZ_PATH=demo@([\d:]+) /.exec(err.message)![1]!;
    const replay = await checkFuzz('demo', fc.integer({ min: 0, max: 100 }), pred, { runs: 200, timeMs: 5000 }, fuzzSettings({ NSM_FUZZ_SEED: '7', NSM_FUZZ_PATH: `demo@${path}` }), () => undefined).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.match(replay?.message ?? '', /counterexample: \[50\]/);
  });

  it('stops at the number of runs', async () => {
    const r = await checkFuzz('quick', fc.nat(), async () => undefined, { runs: 17, timeMs: 5000 }, fuzzSettings({}), () => undefined);
    assert.deepEqual({ runs: r.runs, interrupted: r.interrupted }, { runs: 17, interrupted: false });
  });
});
