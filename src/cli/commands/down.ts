/** `nsm down`: stop pods, the supervisor and the components; delete netns the mesh created. */
import type { Command } from 'commander';
import { action, addRunDirOption, meshContext } from '../../local/cli.js';
import { down } from '../../local/mesh.js';

export function register(program: Command): void {
  addRunDirOption(program.command('down').description('stop the local mesh: pods (NSCs first), then the components; remove sockets and the netns it created (pods, nodes, underlay)')).action(
    action('down', async (opts: { runDir?: string }) => {
      const ctx = meshContext(opts.runDir);
      const res = await down(ctx);
      if (res.nothing) {
        ctx.say(`nothing runs (run dir ${ctx.paths.dir})`);
        return;
      }
      if (res.leftovers.length > 0) {
        process.stderr.write(`nsm down: still present after 5 s: ${res.leftovers.join(', ')}\n`);
        process.exitCode = 1;
      }
      ctx.say(`mesh is down (logs kept in ${ctx.paths.logs})`);
    }),
  );
}
