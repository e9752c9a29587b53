/** The README stays true: its first commands, and its env tables equal what the config schemas generate. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ROOT } from './harness.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

it('README: the first commands are the main job and the test command; .ci/run runs the latter', () => {
  const head = readme.split('\n').slice(0, 12).join('\n');
  assert.match(head, /^ {4}\.\/nsm example dataplane-interrupt$/m);
  assert.match(head, /^ {4}npm test$/m);
  assert.match(readFileSync(join(ROOT, '.ci/run'), 'utf8'), /^npm test$/m);
});

it('README: the env tables are the ones generated from the config schemas', async () => {
  const gen = (await import(pathToFileURL(join(ROOT, 'scripts/env-tables.mjs')).href)) as {
    loadSchemas(root: string): Promise<unknown[]>;
    section(s: unknown): string;
  };
  const schemas = await gen.loadSchemas(ROOT);
  assert.ok(schemas.length >= 6, `found ${schemas.length} schemas`);
  for (const s of schemas) assert.ok(readme.includes(gen.section(s)), `README section for ${(s as { component: string }).component} is stale: run node scripts/env-tables.mjs`);
});
