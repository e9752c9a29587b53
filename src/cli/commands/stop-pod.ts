/** `nsm stop-pod POD`: stop what `nsm run` started in a pod and delete its netns if the mesh created it. */
import type { Command } from 'commander';
import { action, addRunDirOption, meshContext } from '../../local/cli.js';
import { stopPod } from '../../local/pods.js';

export function register(program: Command): void {
  addRunDirOption(
    program
      .command('stop-pod')
      .description('stop the processes of a local pod (NSCs first) and delete its netns if the mesh created it')
      .argument('<pod>', 'pod (netns) name'),
  ).action(
    action('stop-pod', async (pod: string, opts: { runDir?: string }) => {
      const ctx = meshContext(opts.runDir);
      const res = await stopPod(ctx, pod);
      ctx.say(`pod ${pod}: stopped ${res.stopped} process${res.stopped === 1 ? '' : 'es'}${res.deletedNetns ? ', deleted netns' : ''}`);
    }),
  );
}
