/** `nsm nse`: runs the icmp-responder endpoint (upstream cmd-nse-icmp-responder) in the current netns. */
import type { Command } from 'commander';
import { nseConfig } from '../../components/nse/config.js';
import { runComponent } from '../component.js';
import { envHelp } from '../env-help.js';

export function register(program: Command): void {
  program
    .command('nse')
    .description('run a network service endpoint (icmp responder) in this network namespace, e.g. ip netns exec POD nsm nse')
    .addHelpText('after', envHelp(nseConfig))
    .action(async () => {
      const [{ startNse }, { ownNetnsUrl }] = await Promise.all([import('../../components/nse/index.js'), import('../../dataplane/linux/netns.js')]);
      await runComponent({ schema: nseConfig, start: async (config, log, signal) => startNse(config, { log, signal, netnsUrl: await ownNetnsUrl() }) });
    });
}
