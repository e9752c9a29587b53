/** `nsm status`: components, registry contents, connections and pod heal status of the local mesh. */
import type { Command } from 'commander';
import { InvalidArgumentError } from '../../core/errors.js';
import { action, addRunDirOption, meshContext } from '../../local/cli.js';
import { collectStatus, formatStatus } from '../../local/status.js';

export function register(program: Command): void {
  addRunDirOption(
    program
      .command('status')
      .description('show the local mesh: components, services, endpoints, connections, pods')
      .option('-o, --output <format>', 'table or json', 'table'),
  ).action(
    action('status', async (opts: { runDir?: string; output: string }) => {
      if (opts.output !== 'table' && opts.output !== 'json') throw new InvalidArgumentError('--output', opts.output, 'expected table or json');
      const ctx = meshContext(opts.runDir);
      const s = await collectStatus(ctx.paths, ctx.hostname);
      process.stdout.write(opts.output === 'json' ? `${JSON.stringify(s, null, 2)}\n` : `${formatStatus(s)}\n`);
    }),
  );
}
