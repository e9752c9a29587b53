#!/usr/bin/env node
/** The `nsm` command. */
import { run } from './program.js';

run(process.argv).catch((err: unknown) => {
  process.stderr.write(`nsm: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
