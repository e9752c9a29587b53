/**
 * Drift guard for the README env tables: every compiled component config schema (as found by
 * scripts/env-tables.mjs) produces a table with one row per variable.
 */
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import type { ConfigSchema, EnvVar } from './config.js';

type Schema = ConfigSchema<Record<string, EnvVar<unknown>>>;

// This file runs as dist/src/components/env-tables.test.js.
const ROOT = resolve(new URL('../../..', import.meta.url).pathname);
const script = pathToFileURL(resolve(ROOT, 'scripts/env-tables.mjs')).href;
const { loadSchemas, section } = (await import(script)) as { loadSchemas(root: string): Promise<Schema[]>; section(s: Schema): string };
const schemas = await loadSchemas(ROOT);

describe('README env tables', () => {
  it('cover every component', () => {
    const components = schemas.map((s) => s.component);
    for (const c of ['registry', 'nsmgr', 'forwarder', 'nse', 'nsc']) assert.ok(components.includes(c), `a schema for ${c} (found ${components.join(', ')})`);
    assert.equal(new Set(components).size, components.length, 'one schema per component');
  });

  for (const schema of schemas) {
    it(`nsm ${schema.component}: one row per variable`, () => {
      const vars = Object.values(schema.vars);
      const rows = schema.markdown().split('\n').slice(2);
      assert.equal(rows.length, vars.length);
      vars.forEach((v, i) => assert.ok(rows[i]!.startsWith(`| \`${v.name}\` |`), `row ${i} is ${v.name}: ${rows[i]}`));
      for (const row of rows) assert.equal(row.replace(/\\\|/g, '').split('|').length, 5, `three cells: ${row}`);
      assert.ok(section(schema).includes(schema.markdown()));
    });
  }
});
