/** `nsm example dataplane-interrupt`: the seed example, step for step, on the local mesh. */
import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { addRunDirOption, action, meshContext } from '../../local/cli.js';
import { runExample } from '../../local/example.js';

export const EXAMPLES = ['dataplane-interrupt'] as const;

export function register(program: Command): void {
  addRunDirOption(
    program
      .command('example')
      .argument('<name>', `example to run: ${EXAMPLES.join(', ')}`)
      .description('run an upstream NSM example on the local mesh, step for step (needs root)')
      .option('--keep', 'leave the pods (and the mesh, if this run started it) running at the end', false),
  ).action(
    action('example', async (name: string, opts: { keep: boolean; runDir?: string }) => {
      if (!(EXAMPLES as readonly string[]).includes(name)) throw new Error(`unknown example "${name}"; available: ${EXAMPLES.join(', ')}`);
      const ctx = meshContext(opts.runDir);
      const netsvcYaml = fileURLToPath(new URL('../../../../deployments/examples/heal/dataplane-interrupt/netsvc.yaml', import.meta.url));
      const code = await runExample(ctx, { keep: opts.keep, netsvcYaml, entry: ctx.entry, out: process.stdout });
      process.exitCode = code;
    }),
  );
}
