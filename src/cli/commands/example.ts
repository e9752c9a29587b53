/** `nsm example dataplane-interrupt`: the seed example, step for step, on the local mesh. */
import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { addRunDirOption, action, meshContext } from '../../local/cli.js';
import { InvalidArgumentError } from '../../core/errors.js';
import { runExample } from '../../local/example.js';
import { MAX_NODES, parseNodeCount } from '../../local/nodes.js';

export const EXAMPLES = ['dataplane-interrupt'] as const;

/** `--nodes` of the example: 2..MAX_NODES (the NSE goes on node-2). */
export function exampleNodes(raw: string): number {
  const n = parseNodeCount(raw);
  if (n < 2) throw new InvalidArgumentError('--nodes', raw, `expected a whole number from 2 to ${MAX_NODES}: the example puts the NSE on node-2`);
  return n;
}

export function register(program: Command): void {
  addRunDirOption(
    program
      .command('example')
      .argument('<name>', `example to run: ${EXAMPLES.join(', ')}`)
      .description('run an upstream NSM example on the local mesh, step for step (needs root)')
      .option('--keep', 'leave the pods (and the mesh, if this run started it) running at the end', false)
      .option('--nodes <n>', `across nodes: a mesh of n (2..${MAX_NODES}) nodes (nsm up --nodes n), the NSE on node-2 and the NSC on node-1`),
  ).action(
    action('example', async (name: string, opts: { keep: boolean; runDir?: string; nodes?: string }) => {
      if (!(EXAMPLES as readonly string[]).includes(name)) throw new Error(`unknown example "${name}"; available: ${EXAMPLES.join(', ')}`);
      const nodes = opts.nodes === undefined ? undefined : exampleNodes(opts.nodes);
      const ctx = meshContext(opts.runDir);
      const netsvcYaml = fileURLToPath(new URL('../../../../deployments/examples/heal/dataplane-interrupt/netsvc.yaml', import.meta.url));
      const code = await runExample(ctx, { keep: opts.keep, nodes, netsvcYaml, entry: ctx.entry, out: process.stdout });
      process.exitCode = code;
    }),
  );
}
