#!/usr/bin/env node
/**
 * Test entry for the local-mesh commands while `src/cli/program.ts` does not wire them yet: registers
 * up/down/status/run/stop-pod/supervise, plus each component command from `src/cli/commands/<name>.js`
 * when it exists, else a fake (`NSM_TEST_FAKE=registry,nsmgr,…` or `all` forces fakes; `NSMT_FAKE`, which
 * the supervisor passes on to components, does the same); `NSMT_CRASH=nsmgr,…`
 * makes those exit with code 3 at once (crash-loop tests).
 */
import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { runFakeComponent } from './fake-component.js';

type Registrar = { register(program: Command): void };

async function main(): Promise<void> {
  const program = new Command('nsm');
  for (const name of ['up', 'down', 'status', 'run', 'stop-pod', 'supervise', 'health', 'apply']) {
    ((await import(`../../cli/commands/${name}.js`)) as Registrar).register(program);
  }
  const forced = `${process.env.NSM_TEST_FAKE ?? ''},${process.env.NSMT_FAKE ?? ''}`.split(',').map((s) => s.trim());
  for (const name of ['registry', 'nsmgr', 'forwarder', 'nse', 'nsc']) {
    const file = new URL(`../../cli/commands/${name}.js`, import.meta.url);
    if ((process.env.NSMT_CRASH ?? '').split(',').includes(name)) {
      program.command(name).allowUnknownOption().action(() => {
        process.stderr.write(`fake ${name}: crashing on purpose (NSMT_CRASH)\n`);
        process.exit(3);
      });
    } else if (!forced.includes(name) && !forced.includes('all') && existsSync(file)) {
      ((await import(file.href)) as Registrar).register(program);
    } else {
      program.command(name).allowUnknownOption().action(() => runFakeComponent(name));
    }
  }
  await program.parseAsync(process.argv);
}

main().catch((err: unknown) => {
  process.stderr.write(`nsm: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
