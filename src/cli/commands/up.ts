/** `nsm up`: start the local mesh (registry, nsmgr, forwarder under a supervisor). */
import type { Command } from 'commander';
import { action, addRunDirOption, durationOption, meshContext } from '../../local/cli.js';
import { DEFAULT_UP_TIMEOUT_MS, up } from '../../local/mesh.js';

export function register(program: Command): void {
  addRunDirOption(
    program
      .command('up')
      .description('start registry, nsmgr and forwarder on this host under a supervisor (needs root)')
      .option('--timeout <duration>', 'how long to wait for the components to serve', `${DEFAULT_UP_TIMEOUT_MS / 1000}s`),
  ).action(
    action('up', async (opts: { runDir?: string; timeout: string }) => {
      const timeoutMs = durationOption('--timeout', opts.timeout);
      const ctx = meshContext(opts.runDir);
      const res = await up(ctx, timeoutMs);
      if (res.already) ctx.say(`mesh is already up (supervisor pid ${res.supervisor.pid}, run dir ${ctx.paths.dir})`);
      else {
        ctx.say(`mesh is up (supervisor pid ${res.supervisor.pid}, run dir ${ctx.paths.dir})`);
        ctx.say(`  nsmgr: unix://${ctx.paths.sockets.nsmgr}   registry: unix://${ctx.paths.sockets.registry}   logs: ${ctx.paths.logs}`);
      }
    }),
  );
}
