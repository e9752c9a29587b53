/** `nsm run nsc|nse --pod POD`: start a client or endpoint inside a pod netns of the local mesh. */
import type { Command } from 'commander';
import { action, addRunDirOption, durationOption, meshContext } from '../../local/cli.js';
import { DEFAULT_WAIT_TIMEOUT_MS, parseEnvPairs, runPod } from '../../local/pods.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command): void {
  addRunDirOption(
    program
      .command('run')
      .description('start nsc or nse in the network namespace POD (created if missing) in the background')
      .argument('<component>', 'nsc or nse')
      .requiredOption('--pod <name>', 'pod = network namespace name')
      .option('-e, --env <NAME=value>', 'env var for the component (repeatable), e.g. -e NSM_NETWORK_SERVICES=kernel://svc/nsm-1', collect, [])
      .option('--name <name>', 'NSM_NAME of the component (default: the pod name)')
      .option('--node <node>', 'in a mesh of nodes (nsm up --nodes): the node whose nsmgr the pod uses (default node-1)')
      .option('--wait', 'wait until ready: nsc connected (status file), nse registered (registry)')
      .option('--timeout <duration>', 'how long --wait waits', `${DEFAULT_WAIT_TIMEOUT_MS / 1000}s`),
  ).action(
    action('run', async (component: string, opts: { runDir?: string; pod: string; env: string[]; name?: string; node?: string; wait?: boolean; timeout: string }) => {
      const timeoutMs = durationOption('--timeout', opts.timeout);
      const ctx = meshContext(opts.runDir);
      const rec = await runPod(ctx, { component, pod: opts.pod, env: parseEnvPairs(opts.env), name: opts.name, node: opts.node, wait: opts.wait, timeoutMs });
      ctx.say(`${component} ${rec.name} ${opts.wait ? 'ready' : 'started'} in pod ${opts.pod}${opts.node ? ` on ${opts.node}` : ''} (pid ${rec.pid}, log ${rec.log})`);
    }),
  );
}
